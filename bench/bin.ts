#!/usr/bin/env node
/**
 * The package's command: `npx rlhf-kernels bench [options]` (compiled to dist/bench/bin.js, the
 * `bin` of package.json; runs with the runtime dependencies only).
 */
import { main, USAGE } from './cli.js';

const [cmd, ...rest] = process.argv.slice(2);
if (cmd === 'bench') process.exitCode = await main(rest);
else if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
  process.stdout.write(`usage: rlhf-kernels <command>\n\ncommands:\n  bench   ${USAGE.split('\n')[0].replace(/^rlhf-kernels bench: /, '')}\n\n`);
  process.stdout.write(USAGE + '\n');
} else {
  process.stderr.write(`rlhf-kernels: unknown command '${cmd}' (try: rlhf-kernels bench --help)\n`);
  process.exitCode = 2;
}
