// The dashboard's files (web/dashboard, built with npm), embedded into slipd at build time by
// cmake/embed_assets.cmake, so that slipd serves them with no network and no files at run time.
#pragma once

#include <cstddef>
#include <string_view>

namespace slip::slipd::assets {

struct Asset {
  std::string_view path;          // "/index.html", "/uPlot.iife.min.js", ...
  std::string_view content_type;
  std::string_view bytes;
};

// Every embedded file; empty when slipd was built without the dashboard.
const Asset* begin();
const Asset* end();

}  // namespace slip::slipd::assets
