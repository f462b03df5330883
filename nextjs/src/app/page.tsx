export default function Home() {
  return (
    <main>
      <h1>CRM latency spike: API routes</h1>
      <ul>
        <li>
          <code>GET /api/contacts/by-phone?workspaceId=…&amp;phone=…</code> (Supabase, 4 queries)
        </li>
        <li>
          <code>GET /api/contacts/by-phone-convex?workspaceId=…&amp;phone=…</code> (Convex, 1 call)
        </li>
      </ul>
      <p>
        Both need the header <code>x-api-key</code>.
      </p>
    </main>
  );
}
