#pragma once
// What the scripted test server's rules look for in dagent's chat requests: a marker from each
// built-in prompt template (src/planner/prompts.cpp), and a rule answering the request that
// contains one.

#include <string>

#include <boost/json/object.hpp>

namespace dagent::test {

inline constexpr const char* k_chat = "/v1/chat/completions";
inline constexpr const char* k_intent = "intent analyser";
inline constexpr const char* k_plan = "Write a plan for the goal";
inline constexpr const char* k_repair = "cannot run. Fix every problem";
inline constexpr const char* k_replan = "Write only the NEW steps";
inline constexpr const char* k_answer = "final answer of dagent";

/// A script rule: a chat request whose body contains `contains` is answered with `reply`.
inline boost::json::object rule(std::string contains, std::string reply) {
  return boost::json::object{{"path", k_chat}, {"contains", std::move(contains)}, {"reply", std::move(reply)}};
}

}  // namespace dagent::test
