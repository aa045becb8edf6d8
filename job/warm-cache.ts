#!/usr/bin/env node
/**
 * `node dist/job/warm-cache.js`: fetches pinned packages into the shared package cache (the
 * CronJob in k8s/components/package-cache runs it in the job image), and installs each pinned npm
 * package whole under installs/ for Jobs to run without npx. Exits 1 if any failed.
 */
import { ConfigError, describeError } from '../src/shared/errors.js';
import { createLogger } from '../src/shared/logger.js';
import { yargsOptions } from '../src/shared/settings.js';
import { warm, warmConfig, warmList, WARM_SETTINGS } from '../src/job/warm.js';

const [{ default: yargs }, { hideBin }] = await Promise.all([import('yargs'), import('yargs/helpers')]);
const argv = await yargs(hideBin(process.argv))
  .scriptName('warm-cache')
  .usage('$0 [options]\n\nFetches pinned npm and uv packages into the package cache every Job shares.')
  .options(yargsOptions(WARM_SETTINGS))
  .strict()
  .help()
  .version(false)
  .parseAsync();

const log = createLogger({ level: 'info', name: 'warm-cache', sync: true });
let code = 0;
try {
  const cfg = warmConfig(argv, process.env);
  const list = warmList(cfg);
  if (!list.length) log.warn({}, 'nothing to warm: set WARM_PACKAGES or pinned ALLOWED_COMMAND_PATTERNS');
  for (const r of await warm(cfg.PACKAGE_CACHE_DIR, list)) {
    if (r.ok) log.info({ tool: r.tool, spec: r.spec, source: r.source, install: r.install }, `warmed ${r.spec}: ${r.source.from}, ${r.source.ms ?? 0} ms`);
    else {
      code = 1;
      log.error({ tool: r.tool, spec: r.spec, error: r.error }, `could not warm ${r.spec}`);
    }
  }
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : describeError(err)}\n`);
  code = 1;
}
process.exit(code);
