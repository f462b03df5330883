import type { ReactNode } from "react";

export const metadata = { title: "CRM latency spike: API routes" };

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
