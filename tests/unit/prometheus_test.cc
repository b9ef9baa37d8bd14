// The metrics model's writers: Prometheus text (checked by an independent parser) and JSON.
#include <gtest/gtest.h>

#include "../integration/prometheus_check.h"
#include "obs/json.h"
#include "obs/prometheus.h"

namespace slip::obs {
namespace {

using test::check_prometheus_text;

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += e + "\n";
  return s;
}

TEST(PrometheusTest, WritesHelpAndTypeOncePerFamily) {
  std::vector<Family> fs;
  fs.push_back(counter("x_total", "Things").add(1, {{"protocol", "native"}}));
  fs.push_back(counter("x_total", "Things again").add(2, {{"protocol", "nats"}}));
  const std::string text = render_prometheus(fs);
  auto scrape = check_prometheus_text(text);
  EXPECT_TRUE(scrape.errors.empty()) << joined(scrape.errors) << text;
  EXPECT_EQ(text.find("# TYPE x_total"), text.rfind("# TYPE x_total"));
  EXPECT_EQ(scrape.value("x_total", {{"protocol", "native"}}), 1.0);
  EXPECT_EQ(scrape.value("x_total", {{"protocol", "nats"}}), 2.0);
}

TEST(PrometheusTest, EscapesLabelValuesAndHelp) {
  std::vector<Family> fs;
  fs.push_back(gauge("g", "line one\nback\\slash").add(3, {{"name", "a \"quoted\"\nback\\slash"}}));
  const std::string text = render_prometheus(fs);
  EXPECT_NE(text.find("# HELP g line one\\nback\\\\slash\n"), std::string::npos) << text;
  auto scrape = check_prometheus_text(text);
  ASSERT_TRUE(scrape.errors.empty()) << joined(scrape.errors) << text;
  EXPECT_EQ(scrape.value("g", {{"name", "a \"quoted\"\nback\\slash"}}), 3.0);
}

TEST(PrometheusTest, HistogramBucketsAreCumulativeAndEndInInf) {
  Histogram h;
  for (int i = 0; i < 90; ++i) h.record(500);          // 0.5 us
  for (int i = 0; i < 9; ++i) h.record(300'000);       // 300 us
  h.record(20'000'000'000);                            // 20 s: above every bound
  std::vector<Family> fs;
  Family f = latency_histogram("lat_seconds", "Latency");
  f.histograms.push_back(HistogramSample{{{"shard", "all"}}, h.snapshot()});
  fs.push_back(std::move(f));
  const std::string text = render_prometheus(fs);
  auto scrape = check_prometheus_text(text);
  ASSERT_TRUE(scrape.errors.empty()) << joined(scrape.errors) << text;
  EXPECT_EQ(scrape.types["lat_seconds"], "histogram");
  EXPECT_EQ(scrape.value("lat_seconds_bucket", {{"shard", "all"}, {"le", "1e-06"}}), 90.0);
  EXPECT_EQ(scrape.value("lat_seconds_bucket", {{"shard", "all"}, {"le", "0.00025"}}), 90.0);
  EXPECT_EQ(scrape.value("lat_seconds_bucket", {{"shard", "all"}, {"le", "0.0005"}}), 99.0);
  EXPECT_EQ(scrape.value("lat_seconds_bucket", {{"shard", "all"}, {"le", "10"}}), 99.0);
  EXPECT_EQ(scrape.value("lat_seconds_bucket", {{"shard", "all"}, {"le", "+Inf"}}), 100.0);
  EXPECT_EQ(scrape.value("lat_seconds_count", {{"shard", "all"}}), 100.0);
  EXPECT_NEAR(*scrape.value("lat_seconds_sum", {{"shard", "all"}}), 90 * 500e-9 + 9 * 300e-6 + 20, 1e-9);
}

TEST(PrometheusTest, EmptyHistogramStillHasInfBucketSumAndCount) {
  Family f = latency_histogram("empty_seconds", "Nothing yet");
  f.histograms.push_back(HistogramSample{{}, HistogramSnapshot()});
  const std::string text = render_prometheus({f});
  auto scrape = check_prometheus_text(text);
  EXPECT_TRUE(scrape.errors.empty()) << joined(scrape.errors) << text;
  EXPECT_EQ(scrape.value("empty_seconds_bucket", {{"le", "+Inf"}}), 0.0);
  EXPECT_EQ(scrape.value("empty_seconds_count"), 0.0);
}

TEST(PrometheusTest, SkipsInvalidNamesAndSanitizesLabelNames) {
  std::vector<Family> fs;
  fs.push_back(counter("9bad", "starts with a digit").add(1));
  fs.push_back(counter("ok", "fine").add(1, {{"bad-label", "v"}}));
  const std::string text = render_prometheus(fs);
  EXPECT_EQ(text.find("9bad"), std::string::npos);
  auto scrape = check_prometheus_text(text);
  EXPECT_TRUE(scrape.errors.empty()) << joined(scrape.errors) << text;
  EXPECT_EQ(scrape.value("ok", {{"bad_label", "v"}}), 1.0);
}

TEST(PrometheusTest, FormatsValues) {
  EXPECT_EQ(format_value(3), "3");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(1e-6), "1e-06");
  EXPECT_EQ(format_value(HUGE_VAL), "+Inf");
  EXPECT_EQ(format_value(NAN), "NaN");
  EXPECT_TRUE(valid_metric_name("a:b_c9"));
  EXPECT_FALSE(valid_metric_name("a-b"));
  EXPECT_FALSE(valid_metric_name(""));
}

// The checker itself must reject what the format forbids, or the tests above prove nothing.
TEST(PrometheusCheckTest, RejectsBrokenExpositions) {
  const char* broken[] = {
      "9x 1\n",                                                    // bad name
      "x{a=\"1\",a=\"2\"} 1\n",                                    // duplicate label
      "x{a=1} 1\n",                                                // unquoted value
      "x{a=\"\\q\"} 1\n",                                          // bad escape
      "x one\n",                                                   // bad value
      "# TYPE x counter\n# TYPE x counter\nx 1\n",                 // TYPE twice
      "x 1\n# TYPE x counter\n",                                   // TYPE after samples
      "# TYPE x foo\nx 1\n",                                       // unknown type
      "# TYPE x counter\n# TYPE y counter\nx{a=\"1\"} 1\ny 1\nx{a=\"2\"} 1\n",  // not contiguous
      "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",         // no +Inf
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",  // decreasing
      "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",  // +Inf != count
      "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",  // no sum
      "x 1",                                                       // no final newline
  };
  for (const char* text : broken) {
    EXPECT_FALSE(check_prometheus_text(text).errors.empty()) << "accepted: " << text;
  }
  EXPECT_TRUE(check_prometheus_text("# HELP x help\n# TYPE x counter\nx{a=\"b\\\"c\"} 1 1700000000\n").errors.empty());
}

TEST(JsonWriterTest, WritesNestedValuesWithCommasAndEscapes) {
  JsonWriter w;
  w.begin_object()
      .field("s", "a\"b\\c\n\x01")
      .field("n", std::uint64_t{7})
      .field("d", 0.5)
      .field("b", true)
      .key("list")
      .begin_array()
      .value(1)
      .value("x")
      .begin_object()
      .end_object()
      .end_array()
      .field("nan", NAN)
      .end_object();
  EXPECT_EQ(w.str(), R"({"s":"a\"b\\c\n\u0001","n":7,"d":0.5,"b":true,"list":[1,"x",{}],"nan":null})");
}

TEST(HistogramSinceTest, KeepsOnlyLaterValues) {
  Histogram h;
  for (int i = 0; i < 10; ++i) h.record(1000);
  const HistogramSnapshot before = h.snapshot();
  for (int i = 0; i < 5; ++i) h.record(50'000);
  const HistogramSnapshot d = h.snapshot().since(before);
  EXPECT_EQ(d.count(), 5u);
  EXPECT_EQ(d.sum(), 250'000u);
  EXPECT_GE(d.quantile(0.5), 49'000u);
  EXPECT_LE(d.max(), 50'000u);
  EXPECT_EQ(h.snapshot().since(h.snapshot()).count(), 0u);
}

}  // namespace
}  // namespace slip::obs
