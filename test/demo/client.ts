/** A tiny browser stand-in for the demo tests: keeps its cookies, reads forms, never follows redirects. */
export class DemoClient {
  readonly cookies = new Map<string, string>();

  constructor(
    readonly base: string,
    readonly userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
  ) {}

  async get(path: string): Promise<{ status: number; body: string; headers: Headers }> {
    const res = await fetch(this.base + path, { headers: this.#headers(), redirect: "manual" });
    this.#keep(res);
    return { status: res.status, body: await res.text(), headers: res.headers };
  }

  async post(
    path: string,
    fields: Record<string, string>,
  ): Promise<{ status: number; body: string; headers: Headers }> {
    const res = await fetch(this.base + path, {
      method: "POST",
      headers: { ...this.#headers(), "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields).toString(),
      redirect: "manual",
    });
    this.#keep(res);
    return { status: res.status, body: await res.text(), headers: res.headers };
  }

  /** The CSRF token of the first form on a page. */
  async csrf(path = "/"): Promise<string> {
    const page = await this.get(path);
    const match = /name="csrf" value="([^"]+)"/.exec(page.body);
    if (!match) throw new Error(`no CSRF field on ${path} (status ${page.status})`);
    return match[1]!;
  }

  async signIn(name: string): Promise<void> {
    const res = await this.post("/login", { csrf: await this.csrf("/"), name });
    if (res.status !== 303) throw new Error(`sign-in answered ${res.status}`);
  }

  /** The session token in the `sid` cookie, as the server issued it. */
  get token(): string | undefined {
    return this.cookies.get("sid");
  }

  /** Forgets one cookie, as a browser whose cookie expired. */
  drop(name: string): void {
    this.cookies.delete(name);
  }

  #headers(): Record<string, string> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    return { "user-agent": this.userAgent, ...(cookie ? { cookie } : {}) };
  }

  #keep(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const pair = line.split(";")[0]!;
      const at = pair.indexOf("=");
      const name = pair.slice(0, at);
      const value = pair.slice(at + 1);
      if (/max-age=0/i.test(line) || value === "") this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}
