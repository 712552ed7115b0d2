// The edge to the kernel: runs `nft -f -` transactions (all or nothing) and reads tables.
import { spawn } from "node:child_process";

export type NftRunner = (script: string) => Promise<void>;

/** Thrown when the nft binary is missing: the speaker then cannot forward Proxy-mode IPs. */
export class NftMissingError extends Error {}

/**
 * Runs an nft script as one transaction; rejects with nft's own message on failure.
 * `command` is the nft command line without "-f -" (tests prefix `ip netns exec NS`).
 */
export function runNft(script: string, command: readonly string[] = ["nft"]): Promise<void> {
  const nftPath = command[command.length - 1] ?? "nft";
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, [...command.slice(1), "-f", "-"], {
      stdio: ["pipe", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        e.code === "ENOENT"
          ? new NftMissingError(
              `the nft binary (${nftPath}) is missing: install nftables in the speaker image to forward ipMode Proxy Services`,
            )
          : e,
      ),
    );
    child.once("close", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`nft -f failed (exit ${code}): ${err.trim()}`));
    });
    child.stdin.on("error", () => {});
    child.stdin.end(script);
  });
}
