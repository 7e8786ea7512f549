// report.html's writer: the measurements go into the page as JSON that no
// name can break out of, with the C++ ranking's picks beside them (the page
// itself is driven in chromium by bench/browser/report_test.cjs).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "annulus_bench/report_html.hpp"

using namespace annulus;
using namespace annulus::bench;

TEST_CASE("write_html embeds the curves, escaped, and the C++ picks", "[bench]") {
  const page_curve flat{.name = "annulus flat", .library = "annulus", .index = "flat", .build = "",
                        .growth = advisor_growth::linear, .bytes_per_vector = 32, .build_s = 0.01,
                        .points = {{"", 1.0, 1000, 900, 2000}}};
  const page_curve hostile{.name = "peer </script><script>alert(1)</script> \"q\" \\", .library = "peer",
                           .index = "x</script>", .build = "a=1", .growth = advisor_growth::linear,
                           .bytes_per_vector = 64, .build_s = 1, .points = {{"ef=10", 0.9, 5000, 100, 150}}};
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
