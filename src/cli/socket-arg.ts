import { parseSocketPath, SettingsError } from '../proxy/pod-settings.js';
import { UsageError } from './go-flags.js';

export { MAX_SOCKET_PATH_BYTES } from '../proxy/pod-settings.js';

/** A socket argument is a plain path or a unix:// URI (`unix:///run/vc/sbs/ID/proxy.sock`). */
export function parseSocketArg(flag: string, value: string): string {
  try {
    return parseSocketPath(`-${flag}`, value);
  } catch (err) {
    throw err instanceof SettingsError ? new UsageError(err.message) : err;
  }
}
