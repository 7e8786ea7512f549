// report.html's writer: the measurements go into the page as JSON that no
// name can break out of, with the C++ ranking's picks beside them (the page
// itself is driven in chromium by bench/browser/report_test.cjs).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#include "annulus_bench/report_html.hpp"

using namespace annulus;
using namespace annulus::bench;

TEST_CASE("write_html embeds the curves, escaped, and the C++ picks", "[bench]") {
  // A curve's name is its library's, index and build: the hostile text is in those.
  auto curve = [](std::string library, std::string index, std::string build, advisor_point point,
                  double bytes_per_vector, double build_s) {
    page_curve c;
    c.library = std::move(library);
    c.measured.index = std::move(index);
    c.measured.build = std::move(build);
    c.measured.sweep = {std::move(point)};
    c.measured.bytes_per_vector = bytes_per_vector;
    c.measured.build_s = build_s;
    return c;
  };
  const page_curve flat = curve("annulus", "flat", "", {"", 1.0, 1000, 900, 2000}, 32, 0.01);
  const page_curve hostile = curve("peer", "x</script><script>alert(1)</script>", "\"q\" \\",
                                   {"ef=10", 0.9, 5000, 100, 150}, 64, 1);
  const page_data page{.title = "t", .context = "c", .metric = "l2", .k = 10, .rows = 1000, .dim = 8, .queries = 10,
                       .threads = 2, .goals = {}, .curves = {flat, hostile}};
  const auto file = std::filesystem::temp_directory_path() / "annulus_report_html_test.html";
  write_html(file, page);
  std::stringstream text;
  text << std::ifstream(file).rdbuf();
  const std::string html = text.str();
  std::filesystem::remove(file);

  const auto open = html.find("<script type=\"application/json\" id=\"measurements\">");
  REQUIRE(open != std::string::npos);
  const auto close = html.find("</script>", open);
  const std::string json = html.substr(open, close - open);
  CHECK(json.find("\\u003c/script>\\u003cscript>alert(1)") != std::string::npos);  // the name, inert
  CHECK(json.find("\\\"q\\\" \\\\") != std::string::npos);
  CHECK(json.find("\"growth\":\"linear\"") != std::string::npos);
  CHECK(json.find("\"ram_budget_bytes\":null") != std::string::npos);  // open targets
  // Only annulus curves are candidates: flat is exact and meets open targets.
  CHECK(json.find("\"verdict\":\"exact\",\"pick\":\"annulus flat\"") != std::string::npos);
  CHECK(json.find("\"pick\":\"peer") == std::string::npos);
  CHECK(html.find("/*ANNULUS_MEASUREMENTS*/") == std::string::npos);
}
