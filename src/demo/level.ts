import { PermissionLevel } from "../core/record.js";

const LEVELS = Object.entries(PermissionLevel).sort((a, b) => b[1] - a[1]);

/** A permission level as its PermissionLevel name; a level between two names shows the lower one plus the rest. */
export function levelName(level: number): string {
  const match = LEVELS.find(([, value]) => value <= level);
  if (!match) return String(level);
  return match[1] === level ? match[0] : `${match[0]}+${level - match[1]}`;
}
