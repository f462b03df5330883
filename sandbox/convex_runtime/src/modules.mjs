// Loads a project's convex/ folder the way `npx convex deploy` would bundle
// it: every module that Convex would push is bundled with esbuild (schema.ts
// and auth.config.ts too), then imported, and its exported functions are
// indexed by their canonical path "module:export".
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";

const ENTRY_EXTENSIONS = [".js", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts", ".jsx"];

/** The module files Convex pushes (same skipping rules as the Convex CLI). */
export function moduleFiles(functionsDir) {
  const files = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const rel = relative(functionsDir, path);
      if (entry.isDirectory()) {
        if (entry.name === "node_modules" || entry.name.startsWith(".")) continue;
        if (rel === "_generated") continue;
        walk(path);
        continue;
      }
      const base = entry.name;
      if (!ENTRY_EXTENSIONS.some((ext) => base.endsWith(ext))) continue;
      if (base.startsWith(".") || base.startsWith("#") || base.includes(" ")) continue;
      if (base === "schema.ts" || base === "schema.js") continue;
      if ((base.match(/\./g) || []).length > 1) continue; // e.g. *.test.ts, auth.config.ts
      if (base.endsWith(".d.ts")) continue;
      if ((base.endsWith(".ts") || base.endsWith(".tsx")) && !/^\s{0,100}(import|export)/m.test(readFileSync(path, "utf8"))) continue;
      files.push(path);
    }
  };
  walk(functionsDir);
  return files.sort();
}

function modulePath(functionsDir, file) {
  return relative(functionsDir, file).split(sep).join("/").replace(/\.[^./]+$/, "");
}

function findFirst(functionsDir, names) {
  for (const name of names) {
    try {
      readFileSync(join(functionsDir, name));
      return join(functionsDir, name);
    } catch {
      // not this one
    }
  }
  return null;
}

/**
 * Bundles the functions into a fresh directory under buildDir, calls
 * beforeImport, then imports them. auth.config.ts is evaluated on import, so
 * beforeImport is where process.env becomes the deployment's env vars
 * (Convex evaluates it with them at deploy time).
 */
export async function loadProject(functionsDir, buildDir, { beforeImport = () => {} } = {}) {
  functionsDir = resolve(functionsDir);
  const files = moduleFiles(functionsDir);
  const entryPoints = {};
  for (const file of files) entryPoints[`modules/${modulePath(functionsDir, file)}`] = file;
  const schemaFile = findFirst(functionsDir, ["schema.ts", "schema.js"]);
  const authConfigFile = findFirst(functionsDir, ["auth.config.ts", "auth.config.js"]);
  if (schemaFile) entryPoints["special/schema"] = schemaFile;
  if (authConfigFile) entryPoints["special/auth.config"] = authConfigFile;

  // A fresh directory per start: imported module URLs are cached by Node.
  const outdir = join(buildDir, `build-${process.pid}-${Date.now()}`);
  rmSync(buildDir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints,
    outdir,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    outExtension: { ".js": ".mjs" },
    logLevel: "silent",
    sourcemap: "inline",
    absWorkingDir: functionsDir,
  });

  beforeImport();
  const modules = new Map();
  for (const name of Object.keys(entryPoints).filter((n) => n.startsWith("modules/"))) {
    const url = pathToFileURL(join(outdir, `${name}.mjs`)).href;
    modules.set(name.slice("modules/".length), await import(url));
  }
  const schema = schemaFile ? (await import(pathToFileURL(join(outdir, "special/schema.mjs")).href)).default : null;
  const authConfig = authConfigFile
    ? (await import(pathToFileURL(join(outdir, "special/auth.config.mjs")).href)).default
    : null;
  return new Project(modules, schema, authConfig);
}

export class Project {
  constructor(modules, schema, authConfig) {
    this.modules = modules;
    this.schema = schema;
    this.schemaJson = schema ? JSON.parse(schema.export()) : null;
    this.authConfig = authConfig;
    this.functions = new Map();
    for (const [path, exports] of modules) {
      for (const [name, value] of Object.entries(exports)) {
        if (typeof value !== "function") continue;
        const kind = value.isQuery ? "query" : value.isMutation ? "mutation" : value.isAction ? "action" : null;
        if (kind === null) continue;
        this.functions.set(`${path}:${name}`, {
          path: `${path}:${name}`,
          kind,
          visibility: value.isPublic ? "public" : "internal",
          fn: value,
          argsValidator: JSON.parse(value.exportArgs()),
          returnsValidator: value.exportReturns ? JSON.parse(value.exportReturns()) : null,
        });
      }
    }
    const httpModule = modules.get("http");
    this.router = httpModule?.default?.isRouter ? httpModule.default : null;
  }

  /**
   * The function a path names, accepting what Convex canonicalises:
   * "module:fn", "module.js:fn", "module" (the default export).
   */
  lookup(path) {
    if (typeof path !== "string") return undefined;
    const colon = path.lastIndexOf(":");
    let [module, name] = colon === -1 ? [path, "default"] : [path.slice(0, colon), path.slice(colon + 1)];
    module = module.replace(/\.(js|ts)$/, "");
    return this.functions.get(`${module}:${name}`);
  }
}
