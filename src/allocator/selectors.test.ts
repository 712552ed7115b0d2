import { describe, expect, it } from "vitest";
import { anySelectorMatches, selectorMatches } from "./selectors.ts";
import type { LabelSelector } from "./types.ts";

const labels = { team: "a", tier: "web" };

describe("selectorMatches", () => {
  it.each<[string, LabelSelector, boolean]>([
    ["empty selector matches everything", {}, true],
    ["matchLabels equal", { matchLabels: { team: "a" } }, true],
    ["matchLabels all must hold", { matchLabels: { team: "a", tier: "db" } }, false],
    ["matchLabels missing key", { matchLabels: { env: "prod" } }, false],
    ["In hit", { matchExpressions: [{ key: "team", operator: "In", values: ["a", "b"] }] }, true],
    ["In miss", { matchExpressions: [{ key: "team", operator: "In", values: ["b"] }] }, false],
    [
      "In on absent key",
      { matchExpressions: [{ key: "env", operator: "In", values: ["a"] }] },
      false,
    ],
    ["In without values", { matchExpressions: [{ key: "team", operator: "In" }] }, false],
    ["NotIn hit", { matchExpressions: [{ key: "team", operator: "NotIn", values: ["a"] }] }, false],
    ["NotIn miss", { matchExpressions: [{ key: "team", operator: "NotIn", values: ["b"] }] }, true],
    [
      "NotIn absent key",
      { matchExpressions: [{ key: "env", operator: "NotIn", values: ["a"] }] },
      true,
    ],
    ["Exists", { matchExpressions: [{ key: "tier", operator: "Exists" }] }, true],
    ["Exists absent", { matchExpressions: [{ key: "env", operator: "Exists" }] }, false],
    [
      "Exists with values is malformed",
      { matchExpressions: [{ key: "tier", operator: "Exists", values: ["x"] }] },
      false,
    ],
    ["DoesNotExist", { matchExpressions: [{ key: "env", operator: "DoesNotExist" }] }, true],
    [
      "DoesNotExist present",
      { matchExpressions: [{ key: "team", operator: "DoesNotExist" }] },
      false,
    ],
    [
      "labels and expressions are ANDed",
      {
        matchLabels: { team: "a" },
        matchExpressions: [{ key: "tier", operator: "In", values: ["db"] }],
      },
      false,
    ],
  ])("%s", (_name, selector, expected) => {
    expect(selectorMatches(selector, labels)).toBe(expected);
  });

  it("a label inherited from Object.prototype is not a label", () => {
    expect(
      selectorMatches({ matchExpressions: [{ key: "toString", operator: "Exists" }] }, {}),
    ).toBe(false);
  });
});

describe("anySelectorMatches", () => {
  it("ORs the selectors", () => {
    expect(
      anySelectorMatches(
        [{ matchLabels: { team: "b" } }, { matchLabels: { tier: "web" } }],
        labels,
      ),
    ).toBe(true);
    expect(anySelectorMatches([{ matchLabels: { team: "b" } }], labels)).toBe(false);
    expect(anySelectorMatches([], labels)).toBe(false);
  });
});
