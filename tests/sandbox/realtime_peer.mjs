// A Realtime subscriber using @supabase/supabase-js the way an app does:
//   node tests/sandbox/realtime_peer.mjs SUPABASE_URL ANON_KEY ACCESS_TOKEN BINDINGS_JSON
// signs in with ACCESS_TOKEN, joins one channel with the postgres_changes
// bindings given ([{event, schema, table, filter?}]), and prints one JSON line
// per subscribe status ({"status", "error"?}) and per change ({"change"}: the
// payload handed to the app's callback). Reads "token <jwt>" lines on stdin
// to call setAuth with a new token.
import { createClient } from "@supabase/supabase-js";
import { createInterface } from "node:readline";
import WebSocket from "ws";

const [url, anonKey, accessToken, bindingsJson] = process.argv.slice(2);
const out = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);

const supabase = createClient(url, anonKey, {
  auth: { persistSession: false, autoRefreshToken: false },
  realtime: { transport: WebSocket, heartbeatIntervalMs: 5_000 },
});
if (accessToken) await supabase.realtime.setAuth(accessToken);
let channel = supabase.channel("inbox");
for (const binding of JSON.parse(bindingsJson)) {
  channel = channel.on("postgres_changes", binding, (payload) => out({ change: payload }));
}
channel.subscribe((status, error) => out(error ? { status, error: error.message } : { status }));

createInterface({ input: process.stdin }).on("line", async (line) => {
  const [command, value] = line.split(" ");
  if (command === "token") await supabase.realtime.setAuth(value);
});
