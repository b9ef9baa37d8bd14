#include "obs/traceparent.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <vector>

#include "obs/spans.h"

namespace slip::obs {
namespace {

constexpr std::string_view kExample = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceparentTest, ParsesTheSpecExample) {
  auto t = parse_traceparent(kExample);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->trace_id[0], 0x4b);
  EXPECT_EQ(t->trace_id[15], 0x36);
  EXPECT_EQ(t->parent_id[0], 0x00);
  EXPECT_EQ(t->parent_id[7], 0xb7);
  EXPECT_TRUE(t->sampled());
  EXPECT_EQ(format_traceparent(*t), kExample);
}

TEST(TraceparentTest, RejectsMalformedHeaders) {
  const std::string good(kExample);
  const char* bad[] = {
      "",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",          // short
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",   // v00 with extra
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",         // uppercase
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",         // zero trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",         // zero parent id
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",         // version ff
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",         // separator
      "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",         // not hex
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",         // flags
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",        // future version, no '-'
  };
  for (const char* h : bad) EXPECT_FALSE(parse_traceparent(h).is_ok()) << "accepted: " << h;
  // Flip every character of the example into something else that is not hex: always rejected.
  for (std::size_t i = 0; i < good.size(); ++i) {
    std::string h = good;
    h[i] = 'z';
    EXPECT_FALSE(parse_traceparent(h).is_ok()) << h;
  }
}

TEST(TraceparentTest, AcceptsFutureVersionsWithMoreFields) {
  auto t = parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever");
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_TRUE(t->sampled());
}

TEST(TraceparentTest, NewTracesRoundTripAndChildrenKeepTheTrace) {
  const TraceContext t = new_trace();
  auto back = parse_traceparent(format_traceparent(t));
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(*back, t);
  const TraceContext c = child_of(t);
  EXPECT_EQ(c.trace_id, t.trace_id);
  EXPECT_NE(c.parent_id, t.parent_id);
  EXPECT_FALSE(new_trace(false).sampled());
}

}  // namespace
}  // namespace slip::obs

namespace slip::obs {
namespace {

TEST(SpansTest, HopSpanKeepsTheTraceAndNamesTheSenderAsParent) {
  auto parent = parse_traceparent(kExample);
  ASSERT_TRUE(parent.is_ok());
  Span s = span_of_hop(*parent);
  EXPECT_EQ(s.trace_id, parent->trace_id);
  EXPECT_EQ(s.parent_span_id, parent->parent_id);
  EXPECT_NE(s.span_id, parent->parent_id);
  s.span_id = {1, 2, 3, 4, 5, 6, 7, 8};
  s.name = "publish \"a\".b";
  s.kind = "broker";
  s.start_unix_ns = 17;
  s.duration_ns = 5;
  s.attributes = {{"subject", "a.b"}};
  EXPECT_EQ(span_json(s),
            R"({"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"0102030405060708",)"
            R"("parent_span_id":"00f067aa0ba902b7","name":"publish \"a\".b","kind":"broker","start_unix_ns":17,)"
            R"("duration_ns":5,"status":"OK","attributes":{"subject":"a.b"}})");
  s.parent_span_id = {};
  EXPECT_EQ(span_json(s).find("parent_span_id"), std::string::npos);  // a root span has none
}

TEST(SpansTest, WriterAppendsOneLinePerSpanAndFlushesOnDemand) {
  char tmpl[] = "/tmp/slip-spans-XXXXXX";
  const int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    auto w = SpanWriter::open(tmpl, std::chrono::hours(1));  // no timed flush during the test
    ASSERT_TRUE(w.is_ok()) << w.status().to_string();
    Span s;
    s.name = "one";
    (*w)->write(s);
    s.name = "two";
    (*w)->write(s);
    std::ifstream before(tmpl);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(before), {}), "");  // still buffered
    (*w)->flush();
    EXPECT_EQ((*w)->spans(), 2u);
    EXPECT_EQ((*w)->failed(), 0u);
  }
  std::ifstream in(tmpl);
  std::string line;
  std::vector<std::string> names;
  while (std::getline(in, line)) names.push_back(line.substr(line.find("\"name\":") + 7, 5));
  EXPECT_EQ(names, (std::vector<std::string>{"\"one\"", "\"two\""}));
  unlink(tmpl);
  EXPECT_FALSE(SpanWriter::open("/nonexistent-dir/x.jsonl").is_ok());
}

}  // namespace
}  // namespace slip::obs
