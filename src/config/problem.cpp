#include "config/problem.hpp"

#include <stdexcept>

#include <boost/throw_exception.hpp>

namespace dagent::config {

std::string Problem::to_string() const {
  std::string out = file;
  if (line > 0) {
    out += ':';
    out += std::to_string(line);
  }
  if (!out.empty()) out += ": ";
  if (!key.empty()) {
    out += key;
    out += ": ";
  }
  out += message;
  return out;
}

std::vector<std::string> Problems::lines() const {
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const Problem& problem : items) out.push_back(problem.to_string());
  return out;
}

std::string Problems::to_string() const {
  std::string out;
  for (const Problem& problem : items) {
    out += problem.to_string();
    out += '\n';
  }
  return out;
}

void throw_exception_from_error(const Problems& problems, const boost::source_location& location) {
  boost::throw_exception(std::runtime_error(problems.to_string()), location);
}

}  // namespace dagent::config
