import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { parseSetCookie } from "cookie";

/** Starts `handler` on a loopback port; the returned close stops it. */
export async function listen(
  handler: Parameters<typeof createServer>[1],
): Promise<{ base: string; close: () => Promise<void> }> {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** One answer, read whole, redirects not followed. */
export interface Reply {
  status: number;
  text: string;
  location: string | null;
  setCookies: string[];
}

/** A browser-like client that keeps cookies, also those set on a redirect. */
export class Browser {
  readonly cookies = new Map<string, string>();

  constructor(readonly base: string) {}

  async request(method: string, path: string): Promise<Reply> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("; ");
    const response = await fetch(this.base + path, {
      method,
      redirect: "manual",
      headers: cookie ? { cookie } : {},
    });
    const setCookies = response.headers.getSetCookie();
    for (const raw of setCookies) {
      const parsed = parseSetCookie(raw);
      if (parsed.maxAge === 0 || !parsed.value) this.cookies.delete(parsed.name);
      else this.cookies.set(parsed.name, parsed.value);
    }
    return {
      status: response.status,
      text: await response.text(),
      location: response.headers.get("location"),
      setCookies,
    };
  }

  get(path: string): Promise<Reply> {
    return this.request("GET", path);
  }

  post(path: string): Promise<Reply> {
    return this.request("POST", path);
  }

  /** The session id in the connect.sid cookie (`s:id.secret`). */
  sid(name = "connect.sid"): string | undefined {
    const value = this.cookies.get(name);
    return value?.slice(2, value.lastIndexOf("."));
  }
}
