/**
 * Why a native add-on (sd-notify, modern-syslog) did not load, in one line an operator can act
 * on. The usual case after a change of Node line is an add-on built for another Node's ABI.
 */
export function addonLoadFailure(name: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const abi = /NODE_MODULE_VERSION (\d+)\.\s+This version of Node\.js requires\s+NODE_MODULE_VERSION (\d+)/.exec(message);
  if (abi) {
    return `the ${name} module was built for another Node (ABI ${abi[1]}; Node ${process.version} needs ${abi[2]}): rebuild it with this Node (npm rebuild ${name})`;
  }
  if ((err as NodeJS.ErrnoException | undefined)?.code === 'MODULE_NOT_FOUND') {
    return `the ${name} module is not installed (an optional dependency, built at install: it needs a C compiler)`;
  }
  return `the ${name} module does not load: ${message.split('\n')[0]}`;
}
