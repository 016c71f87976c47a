// Preloaded into Node servers the tests start (node --require tests/mcp/loopback.cjs ...): a server
// that listens on a port without naming a host binds 127.0.0.1 instead of every interface, since
// test servers listen on loopback only. When DAGENT_LISTEN_FD names an open file descriptor, the
// first server to listen writes "listening 127.0.0.1 PORT\n" to it and closes it, so a test can
// start a server on port 0 and learn the port it got (the servers print the port they were asked
// for, not the one they got).
'use strict';

const fs = require('fs');
const net = require('net');

const listen = net.Server.prototype.listen;
let reported = false;

function isPort(value) {
  return typeof value === 'number' || (typeof value === 'string' && /^[0-9]+$/.test(value));
}

function report() {
  const fd = Number(process.env.DAGENT_LISTEN_FD);
  if (reported || !Number.isInteger(fd) || fd < 3) return;
  reported = true;
  const address = this.address();
  if (address === null || typeof address !== 'object') return;
  try {
    fs.writeSync(fd, `listening ${address.address} ${address.port}\n`);
    fs.closeSync(fd);
  } catch (e) {
    // The test went away: nothing to tell.
  }
}

net.Server.prototype.listen = function (...args) {
  if (args.length === 0 || typeof args[0] === 'function') {
    args.unshift(0, '127.0.0.1');
  } else if (isPort(args[0])) {
    if (typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  } else if (args[0] !== null && typeof args[0] === 'object' && !(args[0] instanceof net.Server) &&
             args[0].path === undefined && args[0].handle === undefined && args[0].fd === undefined &&
             args[0].host === undefined) {
    args[0] = Object.assign({}, args[0], { host: '127.0.0.1' });
  }
  this.once('listening', report);
  return listen.apply(this, args);
};
