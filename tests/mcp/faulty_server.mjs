#!/usr/bin/env node
// A deliberately faulty MCP stdio server for dagent's failure tests (the normal behaviours are
// tested against the real npm servers). It initializes and lists one tool, `work`, then misbehaves
// on tools/call as MODE says (its tool list comes in two pages):
//   garbage  writes a line that is not JSON
//   exit     exits with status 3
//   hang     never answers (and ignores notifications/cancelled)
//   ok       answers {"content":[{"type":"text","text":"worked"}]}
// Every line it receives is appended to the file named by $FAULTY_LOG, when set, and its pid is
// written to $FAULTY_PID, when set.
import { appendFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";

const mode = process.argv[2] ?? "ok";
if (process.env.FAULTY_PID) writeFileSync(process.env.FAULTY_PID, `${process.pid}\n`);
const send = (message) => process.stdout.write(JSON.stringify({ jsonrpc: "2.0", ...message }) + "\n");

createInterface({ input: process.stdin }).on("line", (line) => {
  if (process.env.FAULTY_LOG) appendFileSync(process.env.FAULTY_LOG, line + "\n");
  const message = JSON.parse(line);
  if (message.method === "initialize") {
    send({ id: message.id, result: { protocolVersion: message.params.protocolVersion, capabilities: { tools: {} },
                                     serverInfo: { name: "faulty", version: "1" } } });
  } else if (message.method === "tools/list") {
    // Two pages: `work`, then `spare` (and a tool whose name no plan could use).
    if (message.params?.cursor === "page-2") {
      send({ id: message.id, result: { tools: [
        { name: "spare", description: "On the second page", inputSchema: { type: "object", properties: {} } },
        { name: "bad name/with slash", inputSchema: { type: "object" } }] } });
    } else {
      send({ id: message.id, result: { nextCursor: "page-2", tools: [
        { name: "work", description: "Works, or not", inputSchema: { type: "object", properties: {} } }] } });
    }
  } else if (message.method === "tools/call") {
    process.stderr.write(`faulty: tools/call in mode ${mode}\n`);
    if (mode === "garbage") process.stdout.write("Traceback (most recent call last): not JSON\n");
    else if (mode === "exit") process.exit(3);
    else if (mode === "ok") send({ id: message.id, result: { content: [{ type: "text", text: "worked" }] } });
  }
});
