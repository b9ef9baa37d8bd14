// The Prometheus text exposition format (version 0.0.4) for the metrics model.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "obs/metrics.h"

namespace slip::obs {

inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// Writes every family: "# HELP" and "# TYPE" once each, then its samples. Histograms become
// cumulative `NAME_bucket{le="..."}` lines ending in le="+Inf", then `NAME_sum` and
// `NAME_count`. Families with the same name are merged (the first one's help and type win).
// A bucket bound that falls inside one of the histogram's own buckets counts that bucket only
// when all of it lies at or below the bound: within the histogram's 1/64 precision.
std::string render_prometheus(const std::vector<Family>& families);

// Label value escaping: backslash, double quote and newline.
std::string escape_label_value(std::string_view v);
// Help text escaping: backslash and newline.
std::string escape_help(std::string_view v);
// True for [a-zA-Z_:][a-zA-Z0-9_:]*.
bool valid_metric_name(std::string_view name);
// A number as Prometheus writes it: integers without a fraction, "+Inf", "-Inf", "NaN".
std::string format_value(double v);

}  // namespace slip::obs
