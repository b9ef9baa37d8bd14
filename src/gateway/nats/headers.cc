#include "gateway/nats/headers.h"

#include "core/strings.h"

namespace slip::gateway::nats {

namespace {

bool header_safe(std::string_view s) { return s.find_first_of("\r\n") == std::string_view::npos; }

}  // namespace

void append_header_block(std::string& out, const wire::Metadata& headers) {
  out.append("NATS/1.0");
  std::string_view status, description;
  for (const auto& [k, v] : headers) {
    if (k == kStatusKey) status = v;
    if (k == kDescriptionKey) description = v;
  }
  if (!status.empty() && header_safe(status) && status.find(' ') == std::string_view::npos) {
    out.push_back(' ');
    out.append(status);
    if (!description.empty() && header_safe(description)) {
      out.push_back(' ');
      out.append(description);
    }
  }
  out.append("\r\n");
  for (const auto& [k, v] : headers) {
    if (k.empty() || k.front() == ':' || !header_safe(k) || !header_safe(v) ||
        k.find_first_of(": \t") != std::string_view::npos) {
      continue;
    }
    out.append(k);
    out.append(": ");
    out.append(v);
    out.append("\r\n");
  }
  out.append("\r\n");
}

bool parse_header_block(std::string_view b, wire::Metadata& out) {
  out.clear();
  if (b.substr(0, 8) != "NATS/1.0") return false;
  std::size_t eol = b.find("\r\n");
  if (eol == std::string_view::npos) return false;
  const std::string_view status_line = trim(b.substr(8, eol - 8));
  if (!status_line.empty()) {
    const std::size_t sp = status_line.find_first_of(" \t");
    out.emplace_back(kStatusKey, status_line.substr(0, sp));
    if (sp != std::string_view::npos) {
      const std::string_view d = trim(status_line.substr(sp));
      if (!d.empty()) out.emplace_back(kDescriptionKey, d);
    }
  }
  std::size_t pos = eol + 2;
  for (;;) {
    eol = b.find("\r\n", pos);
    if (eol == std::string_view::npos) return false;
    if (eol == pos) return eol + 2 == b.size();  // the empty line ends the block
    const std::string_view line = b.substr(pos, eol - pos);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    out.emplace_back(line.substr(0, colon), trim(line.substr(colon + 1)));
    pos = eol + 2;
  }
}

}  // namespace slip::gateway::nats
