// autocannon ships no type declarations; these cover the programmatic API the HTTP bench uses.
declare module "autocannon" {
  /** One autocannon connection. */
  export interface Client {
    /** Replaces the headers of this connection's requests. */
    setHeaders(headers: Record<string, string>): void;
  }

  /** Options of a run (the subset the bench passes). */
  export interface Options {
    url: string;
    connections?: number;
    pipelining?: number;
    /** Seconds. */
    duration?: number;
    headers?: Record<string, string>;
    /** Called once per connection before it sends anything. */
    setupClient?: (client: Client) => void;
  }

  /** Summary statistics of one histogram. */
  export interface Histogram {
    average: number;
    mean: number;
    stddev: number;
    min: number;
    max: number;
    p50: number;
    p99: number;
    total: number;
  }

  /** What a run reports. */
  export interface Result {
    /** Seconds. */
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    "2xx": number;
    latency: Histogram;
    requests: Histogram;
  }

  export default function autocannon(options: Options): Promise<Result>;
}
