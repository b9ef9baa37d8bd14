// A checker for the Prometheus text exposition format (0.0.4), independent of the writer in
// src/obs: it parses a scrape and lists every rule broken.
//
// Rules checked: metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
// [a-zA-Z_][a-zA-Z0-9_]* without duplicates, label values quoted with only \\, \" and \n
// escapes; values are floats or +Inf/-Inf/NaN; HELP and TYPE at most once per family, TYPE
// before the family's samples and one of the known types; a family's samples are contiguous;
// counters' samples are named as the family; histograms have only _bucket (with le), _sum and
// _count series, and per label set the buckets ascend in le, their counts never decrease, the
// last is le="+Inf" and equals _count.
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace slip::test {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct PromScrape {
  std::vector<std::string> errors;
  std::vector<PromSample> samples;
  std::map<std::string, std::string> types;  // family -> type

  // The value of the sample with exactly these labels, if present.
  std::optional<double> value(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    for (const auto& s : samples) {
      if (s.name == name && s.labels == labels) return s.value;
    }
    return std::nullopt;
  }
};

namespace detail {

inline bool prom_name_ok(const std::string& n, bool colon) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

inline std::optional<double> prom_value(const std::string& v) {
  if (v == "+Inf" || v == "Inf") return HUGE_VAL;
  if (v == "-Inf") return -HUGE_VAL;
  if (v == "NaN") return NAN;
  if (v.empty()) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (end != v.c_str() + v.size()) return std::nullopt;
  return d;
}

// The family a sample belongs to, given the TYPE lines seen.
inline std::string prom_family(const std::string& name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      const std::string base = name.substr(0, name.size() - s.size());
      auto it = types.find(base);
      if (it != types.end() && (it->second == "histogram" || it->second == "summary")) return base;
    }
  }
  return name;
}

}  // namespace detail

inline PromScrape check_prometheus_text(const std::string& text) {
  PromScrape out;
  auto error = [&](int line, const std::string& what) { out.errors.push_back("line " + std::to_string(line) + ": " + what); };
  std::set<std::string> helped, finished_families;
  std::string current_family;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  if (!text.empty() && text.back() != '\n') error(0, "the text does not end with a newline");
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream ls(line);
      std::string hash, kind, name;
      ls >> hash >> kind >> name;
      if (kind != "HELP" && kind != "TYPE") continue;  // a plain comment
      if (!detail::prom_name_ok(name, true)) error(n, "bad metric name in " + kind + ": '" + name + "'");
      if (kind == "HELP") {
        if (!helped.insert(name).second) error(n, "second HELP for " + name);
        continue;
      }
      std::string type, extra;
      ls >> type;
      if (ls >> extra) error(n, "text after the type in: " + line);
      if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" && type != "untyped") {
        error(n, "unknown type '" + type + "'");
      }
      if (out.types.count(name)) error(n, "second TYPE for " + name);
      if (finished_families.count(name) || current_family == name) error(n, "TYPE for " + name + " after its samples");
      out.types[name] = type;
      continue;
    }
    // name{labels} value [timestamp]
    PromSample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!detail::prom_name_ok(s.name, true)) error(n, "bad metric name '" + s.name + "'");
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        std::size_t eq = line.find('=', i);
        if (eq == std::string::npos) {
          error(n, "label without '='");
          break;
        }
        const std::string lname = line.substr(i, eq - i);
        if (!detail::prom_name_ok(lname, false)) error(n, "bad label name '" + lname + "'");
        if (eq + 1 >= line.size() || line[eq + 1] != '"') {
          error(n, "label value not quoted");
          break;
        }
        std::string value;
        std::size_t j = eq + 2;
        bool closed = false;
        for (; j < line.size(); ++j) {
          const char c = line[j];
          if (c == '\\') {
            if (j + 1 >= line.size()) break;
            const char e = line[++j];
            if (e == '\\') {
              value += '\\';
            } else if (e == '"') {
              value += '"';
            } else if (e == 'n') {
              value += '\n';
            } else {
              error(n, std::string("bad escape \\") + e + " in a label value");
            }
          } else if (c == '"') {
            closed = true;
            break;
          } else {
            value += c;
          }
        }
        if (!closed) {
          error(n, "unterminated label value");
          break;
        }
        if (!s.labels.emplace(lname, value).second) error(n, "duplicate label " + lname);
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size() || line[i] != '}') {
        error(n, "labels not closed by '}'");
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      error(n, "no space before the value");
      continue;
    }
    std::istringstream rest(line.substr(i + 1));
    std::string value, timestamp, extra;
    rest >> value >> timestamp >> extra;
    auto v = detail::prom_value(value);
    if (!v) error(n, "bad value '" + value + "'");
    if (!extra.empty()) error(n, "text after the timestamp");
    s.value = v.value_or(0);

    const std::string family = detail::prom_family(s.name, out.types);
    if (family != current_family) {
      if (finished_families.count(family)) error(n, "samples of " + family + " are not contiguous");
      if (!current_family.empty()) finished_families.insert(current_family);
      current_family = family;
    }
    auto type = out.types.find(family);
    if (type != out.types.end()) {
      if ((type->second == "counter" || type->second == "gauge") && s.name != family) {
        error(n, "sample " + s.name + " in " + type->second + " family " + family);
      }
      if (type->second == "histogram") {
        if (s.name == family) error(n, "histogram sample without _bucket/_sum/_count: " + s.name);
        if (s.name == family + "_bucket" && !s.labels.count("le")) error(n, "bucket without le");
      }
    }
    out.samples.push_back(std::move(s));
  }

  // Histograms: per family and label set (without le), ascending le, monotonic counts, +Inf last
  // and equal to _count, and a _sum.
  for (const auto& [family, type] : out.types) {
    if (type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
    std::map<std::map<std::string, std::string>, double> counts;
    std::set<std::map<std::string, std::string>> sums;
    for (const auto& s : out.samples) {
      auto labels = s.labels;
      if (s.name == family + "_bucket") {
        auto le = detail::prom_value(labels["le"]);
        if (!le) out.errors.push_back(family + ": bad le '" + labels["le"] + "'");
        labels.erase("le");
        buckets[labels].emplace_back(le.value_or(NAN), s.value);
      } else if (s.name == family + "_count") {
        counts[labels] = s.value;
      } else if (s.name == family + "_sum") {
        sums.insert(labels);
      }
    }
    if (buckets.empty()) out.errors.push_back(family + ": histogram without buckets");
    for (const auto& [labels, list] : buckets) {
      for (std::size_t k = 1; k < list.size(); ++k) {
        if (!(list[k].first > list[k - 1].first)) out.errors.push_back(family + ": le bounds not ascending");
        if (list[k].second < list[k - 1].second) out.errors.push_back(family + ": bucket counts decrease");
      }
      if (list.empty() || !std::isinf(list.back().first)) {
        out.errors.push_back(family + ": buckets do not end in le=\"+Inf\"");
        continue;
      }
      auto c = counts.find(labels);
      if (c == counts.end()) {
        out.errors.push_back(family + ": no _count");
      } else if (c->second != list.back().second) {
        out.errors.push_back(family + ": +Inf bucket differs from _count");
      }
      if (!sums.count(labels)) out.errors.push_back(family + ": no _sum");
    }
  }
  return out;
}

}  // namespace slip::test
