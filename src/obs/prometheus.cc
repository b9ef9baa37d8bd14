#include "obs/prometheus.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

namespace slip::obs {

const std::vector<double>& latency_bounds_seconds() {
  static const std::vector<double> bounds = {1e-6,   2.5e-6, 5e-6,   1e-5,  2.5e-5, 5e-5, 1e-4, 2.5e-4,
                                             5e-4,   1e-3,   2.5e-3, 5e-3,  1e-2,   2.5e-2, 5e-2, 0.1,
                                             0.25,   0.5,    1,      2.5,   5,      10};
  return bounds;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", v);
    // Shortest form that reads back the same.
    for (int prec = 1; prec <= 17; ++prec) {
      char shorter[64];
      std::snprintf(shorter, sizeof shorter, "%.*g", prec, v);
      if (std::strtod(shorter, nullptr) == v) return shorter;
    }
  }
  return buf;
}

namespace {

// Label names follow [a-zA-Z_][a-zA-Z0-9_]*; anything else becomes '_'.
std::string label_name(std::string_view n) {
  std::string out(n);
  for (std::size_t i = 0; i < out.size(); ++i) {
    char& c = out[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) c = '_';
  }
  if (out.empty()) out.push_back('_');
  return out;
}

void write_labels(std::string& out, const Labels& labels, const char* extra_name = nullptr,
                  const std::string& extra_value = {}) {
  if (labels.empty() && extra_name == nullptr) return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += label_name(k);
    out += "=\"";
    out += escape_label_value(v);
    out += '"';
  }
  if (extra_name != nullptr) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

const char* type_name(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void write_family(std::string& out, const Family& f, const std::vector<const Family*>& parts) {
  out += "# HELP ";
  out += f.name;
  out += ' ';
  out += escape_help(f.help);
  out += "\n# TYPE ";
  out += f.name;
  out += ' ';
  out += type_name(f.type);
  out += '\n';
  for (const Family* p : parts) {
    if (f.type != MetricType::kHistogram) {
      for (const Sample& s : p->samples) {
        out += f.name;
        write_labels(out, s.labels);
        out += ' ';
        out += format_value(s.value);
        out += '\n';
      }
      continue;
    }
    for (const HistogramSample& h : p->histograms) {
      for (double bound : p->bounds) {
        // Bounds are in the exported unit; the histogram counts in the recorded one.
        const double raw = bound / p->unit_scale;
        const auto raw_bound = static_cast<std::uint64_t>(std::llround(raw));
        out += f.name;
        out += "_bucket";
        write_labels(out, h.labels, "le", format_value(bound));
        out += ' ';
        out += format_value(static_cast<double>(h.values.count_at_or_below(raw_bound)));
        out += '\n';
      }
      out += f.name;
      out += "_bucket";
      write_labels(out, h.labels, "le", "+Inf");
      out += ' ';
      out += format_value(static_cast<double>(h.values.count()));
      out += '\n';
      out += f.name;
      out += "_sum";
      write_labels(out, h.labels);
      out += ' ';
      out += format_value(static_cast<double>(h.values.sum()) * p->unit_scale);
      out += '\n';
      out += f.name;
      out += "_count";
      write_labels(out, h.labels);
      out += ' ';
      out += format_value(static_cast<double>(h.values.count()));
      out += '\n';
    }
  }
}

}  // namespace

std::string render_prometheus(const std::vector<Family>& families) {
  // Group by name, keeping first-seen order.
  std::vector<std::string> order;
  std::map<std::string, std::vector<const Family*>> by_name;
  for (const Family& f : families) {
    if (!valid_metric_name(f.name)) continue;
    auto& parts = by_name[f.name];
    if (parts.empty()) order.push_back(f.name);
    if (!parts.empty() && parts.front()->type != f.type) continue;  // a clash: keep the first type
    parts.push_back(&f);
  }
  std::string out;
  out.reserve(4096);
  for (const std::string& name : order) {
    const auto& parts = by_name[name];
    write_family(out, *parts.front(), parts);
  }
  return out;
}

}  // namespace slip::obs
