// Assembles a runtime: bundle the functions, load the store, serve HTTP,
// and save the store to the data directory when asked to stop (and after
// writes have settled), so `sandbox down` / `up` keeps the data.
import { join } from "node:path";
import { Authenticator } from "./auth.mjs";
import { captureConsole } from "./execution.mjs";
import { Executor } from "./executor.mjs";
import { loadProject } from "./modules.mjs";
import { ConvexHttpServer } from "./server.mjs";
import { Database } from "./storage.mjs";
import { SyncServer } from "./sync.mjs";
import { installSyscalls } from "./syscalls.mjs";

const SAVE_CHECK_MS = 2_000;
const SAVE_WHEN_IDLE_MS = 5_000;
const SAVE_AT_LEAST_EVERY_MS = 120_000;

/**
 * Functions see exactly the deployment's env vars (plus Convex's system
 * ones), never the runtime's own environment such as the admin key.
 */
function setFunctionEnvironment(deploymentEnv, systemEnv) {
  for (const key of Object.keys(process.env)) {
    if (key !== "TZ") delete process.env[key];
  }
  Object.assign(process.env, deploymentEnv, systemEnv);
}

export async function startRuntime({
  functionsDir,
  dataDir,
  host = "127.0.0.1",
  port = 3210,
  sitePort = 3211,
  adminKey,
  deploymentEnv = {},
  deploymentName = "sandbox",
  persist = true,
  log = (line) => console.log(line),
}) {
  if (!adminKey) throw new Error("an admin key is required (CONVEX_ADMIN_KEY)");
  // Bundling runs with the runtime's own environment; the functions, from
  // their import on, see only the deployment's.
  const project = await loadProject(functionsDir, join(dataDir, "build"), {
    beforeImport: () =>
      setFunctionEnvironment(deploymentEnv, {
        CONVEX_CLOUD_URL: `http://${host}:${port}`,
        CONVEX_SITE_URL: `http://${host}:${sitePort}`,
      }),
  });
  const db = new Database(project.schemaJson);
  const loaded = persist ? db.load(dataDir) : 0;

  const authenticator = new Authenticator({ adminKey, providers: project.authConfig?.providers, deploymentName });
  const executor = new Executor({ db, project, deploymentName });
  installSyscalls({
    db,
    deploymentName,
    runNested: (parent, args) => executor.runNested(parent, args),
    runFromAction: (parent, kind, args) => executor.runFromAction(parent, kind, args),
  });
  captureConsole();

  const sync = new SyncServer({ executor, authenticator, db, log });
  const server = new ConvexHttpServer({ executor, authenticator, project, host, port, sitePort, deploymentName, sync });
  await server.listen();
  // Functions learn the real ports (port 0 picks free ones in tests).
  process.env.CONVEX_CLOUD_URL = `http://${host}:${server.port}`;
  process.env.CONVEX_SITE_URL = `http://${host}:${server.sitePort}`;

  let savedAt = db.changeCounter;
  let saving = null;
  const lastChange = { counter: db.changeCounter, at: Date.now(), dirtySince: null };
  const save = async () => {
    if (saving) await saving;
    if (!persist || db.changeCounter === savedAt) return;
    // Wait for a gap between transactions: the snapshot must not include a
    // running mutation's uncommitted writes.
    while (db.undoLog) await new Promise((r) => setImmediate(r));
    const counter = db.changeCounter;
    const started = Date.now();
    saving = db.save(dataDir);
    try {
      const count = await saving;
      savedAt = counter;
      lastChange.dirtySince = null;
      log(`convex-sandbox: saved ${count} documents to ${dataDir} in ${Date.now() - started} ms`);
    } finally {
      saving = null;
    }
  };
  const saveTimer = setInterval(() => {
    const now = Date.now();
    if (db.changeCounter !== lastChange.counter) {
      lastChange.counter = db.changeCounter;
      lastChange.at = now;
      lastChange.dirtySince ??= now;
    }
    if (saving || db.changeCounter === savedAt || db.undoLog) return;
    if (now - lastChange.at >= SAVE_WHEN_IDLE_MS || now - (lastChange.dirtySince ?? now) >= SAVE_AT_LEAST_EVERY_MS) {
      save().catch((error) => log(`convex-sandbox: could not save to ${dataDir}: ${error.message}`));
    }
  }, SAVE_CHECK_MS);
  saveTimer.unref();

  log(
    `convex-sandbox: ${project.functions.size} functions from ${functionsDir}, ${loaded} documents loaded; ` +
      `API http://${host}:${server.port}, HTTP actions http://${host}:${server.sitePort}`,
  );

  return {
    port: server.port,
    sitePort: server.sitePort,
    db,
    project,
    executor,
    sync,
    /** Stops serving and saves the store. */
    async stop() {
      clearInterval(saveTimer);
      await server.close();
      await save();
    },
  };
}
