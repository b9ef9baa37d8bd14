// Builds the dashboard into dist/ (or the directory given as the first argument): our page and
// uPlot's prebuilt files side by side. No bundler: the page loads them with plain tags.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] || join(here, "dist");
mkdirSync(out, { recursive: true });
for (const f of ["index.html", "app.js", "style.css"]) copyFileSync(join(here, f), join(out, f));
const uplot = join(process.cwd(), "node_modules", "uplot", "dist");
copyFileSync(join(uplot, "uPlot.iife.min.js"), join(out, "uPlot.iife.min.js"));
copyFileSync(join(uplot, "uPlot.min.css"), join(out, "uPlot.min.css"));
console.log(`dashboard built in ${out}`);
