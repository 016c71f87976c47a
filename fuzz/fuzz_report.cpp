// The run report (src/report): `dagent report result.json` reads files anyone may have written,
// and every text in a result can come from a model. Any JSON object gives a page or an error,
// never a crash; a page is valid UTF-8 and holds only its own two scripts and no markup from the
// input (each `<` of the input arrives escaped).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/parse.hpp>

#include "check.hpp"
#include "report/report.hpp"
#include "text/utf8.hpp"

namespace {

using dagent::fuzz::check;

std::size_t count(std::string_view text, std::string_view needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  boost::system::error_code ec;
  boost::json::value parsed = boost::json::parse(bytes, ec);
  if (ec || !parsed.is_object()) return 0;
  dagent::report::ReportOptions options;
  options.max_field_bytes = 512;  // small caps: the cuts are exercised too
  options.max_text_bytes = 4096;
  options.max_drawn_steps = 20;
  options.max_listed_steps = 40;
  options.goal = "<goal>";
  auto page = dagent::report::render_report(parsed.get_object(), options);
  if (!page) {
    check(!page.error().empty(), "an error says why");
    return 0;
  }
  check(dagent::text::is_valid_utf8(*page), "the page is valid UTF-8");
  check(count(*page, "<script") == 2, "only the page's own two scripts");
  check(count(*page, "<img") == 0 && count(*page, "<iframe") == 0, "no markup from the input");
  check(page->find("<goal>") == std::string::npos, "the goal is escaped");
  return 0;
}
