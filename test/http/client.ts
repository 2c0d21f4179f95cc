import { parseSetCookie } from "cookie";

/** One response, read whole. */
export interface Answer {
  status: number;
  body: unknown;
  text: string;
  /** Raw Set-Cookie values. */
  setCookies: string[];
}

/** Sends one request to a test server. */
export async function send(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const response = await fetch(base + path, { method, headers });
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, body, text, setCookies: response.headers.getSetCookie() };
}

/** A browser-like client: keeps the cookies the server sets and sends them back. */
export class Client {
  readonly cookies = new Map<string, string>();

  constructor(
    readonly base: string,
    readonly extraHeaders: Record<string, string> = {},
  ) {}

  async request(method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    const answer = await send(this.base, method, path, {
      ...this.extraHeaders,
      ...(cookie ? { cookie } : {}),
      ...headers,
    });
    for (const raw of answer.setCookies) {
      const parsed = parseSetCookie(raw);
      if (parsed.maxAge === 0 || !parsed.value) this.cookies.delete(parsed.name);
      else this.cookies.set(parsed.name, parsed.value);
    }
    return answer;
  }

  get(path: string, headers?: Record<string, string>): Promise<Answer> {
    return this.request("GET", path, headers);
  }

  post(path: string, headers?: Record<string, string>): Promise<Answer> {
    return this.request("POST", path, headers);
  }
}

/** Attributes of a Set-Cookie value, as parsed by the cookie package. */
export function cookieOf(raw: string) {
  return parseSetCookie(raw);
}
