import { after, before, describe, it } from "node:test";
import { expect } from "expect";
import { runStoreConformance } from "stowage/conformance";
import { MapStore } from "./map-store.js";

runStoreConformance(
  { describe, it, beforeAll: before, afterAll: after, expect },
  "outsider map store",
  () => new MapStore(),
);
