import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

/**
 * /healthz (`live()`: the controller can still do its job — a liveness probe restarts it when
 * not), /readyz (`ready()`: in its group and watching its Jobs) and Prometheus /metrics.
 */
export function startHttp(port: number, registry: Registry, ready: () => boolean | Promise<boolean>, live: () => boolean = () => true): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      const ok = live();
      res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ok ? 'ok\n' : 'failed\n');
    } else if (path === '/readyz') {
      void Promise.resolve(ready()).then((ok) => res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n'));
    } else if (path === '/metrics') {
      void registry.metrics().then((body) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(body));
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => resolve(server));
  });
}
