import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** File paths of the test bed's certificates and keys. */
export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  apiserverCert: string;
  apiserverKey: string;
  adminCert: string;
  adminKey: string;
  kubeletCert: string;
  kubeletKey: string;
  kubeletClientCert: string;
  kubeletClientKey: string;
  saKey: string;
  saPub: string;
}

export function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('testbed: openssl is required to make the cluster certificates (apt-get install openssl)');
    }
    throw err;
  }
}

/** `openssl req` key options: RSA 2048 (the control plane's), or EC P-256, made in milliseconds where RSA takes up to seconds. */
export type KeyType = 'rsa' | 'ec';
const newKey = (k: KeyType) => (k === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['-newkey', 'rsa:2048']);

/** A self-signed CA: `<name>.crt` and `<name>.key` in `dir`. */
export function makeCa(dir: string, name: string, subj: string, key: KeyType = 'rsa'): void {
  mkdirSync(dir, { recursive: true });
  openssl(['req', '-x509', ...newKey(key), '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '3650', '-subj', subj], dir);
}

/**
 * A leaf key and certificate (`<name>.key`, PKCS#8 unencrypted, and `<name>.crt`) signed by the
 * CA `<ca>.crt`/`<ca>.key` in the same folder, with the X.509 extensions given in `ext`.
 */
export function signLeaf(dir: string, ca: string, name: string, subj: string, ext: string, key: KeyType = 'rsa'): void {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(['req', ...newKey(key), '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '3650',
      '-extfile',
      `${name}.ext`,
    ],
    dir,
  );
}

/**
 * A CA and the certificates a private control plane needs: the API server's serving cert,
 * an admin client cert in `system:masters`, the node's serving cert (for the log endpoint),
 * the API server's client cert towards the node, and the service-account signing key pair.
 */
export function makePki(dir: string): Pki {
  mkdirSync(dir, { recursive: true });
  const p = (f: string) => join(dir, f);
  const pki: Pki = {
    dir,
    caCert: p('ca.crt'),
    caKey: p('ca.key'),
    apiserverCert: p('apiserver.crt'),
    apiserverKey: p('apiserver.key'),
    adminCert: p('admin.crt'),
    adminKey: p('admin.key'),
    kubeletCert: p('kubelet.crt'),
    kubeletKey: p('kubelet.key'),
    kubeletClientCert: p('kubelet-client.crt'),
    kubeletClientKey: p('kubelet-client.key'),
    saKey: p('sa.key'),
    saPub: p('sa.pub'),
  };
  if (existsSync(pki.saPub)) return pki;
  makeCa(dir, 'ca', '/CN=testbed-ca');
  const leaf = (name: string, subj: string, ext: string) => signLeaf(dir, 'ca', name, subj, ext);
  const server =
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n';
  const client = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n';
  leaf('apiserver', '/CN=kube-apiserver', server);
  leaf('kubelet', '/CN=testbed-node', server);
  leaf('admin', '/O=system:masters/CN=testbed-admin', client);
  leaf('kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', client);
  openssl(['genrsa', '-out', 'sa.key', '2048'], dir);
  openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  return pki;
}

/** File paths of a Kafka broker's TLS material. */
export interface BrokerTls {
  dir: string;
  /** The CA clients trust (PEM). */
  caCert: string;
  brokerCert: string;
  brokerKey: string;
  /** Key, then certificate chain (leaf, CA), in one PEM file: Kafka's `ssl.keystore.type=PEM` file form. */
  keystore: string;
}

/**
 * A CA of its own for the broker (separate from the control plane's, as in production) and a
 * serving certificate for 127.0.0.1 / localhost, the addresses clients are given.
 */
export function makeBrokerTls(dir: string): BrokerTls {
  mkdirSync(dir, { recursive: true });
  const p = (f: string) => join(dir, f);
  const tls: BrokerTls = { dir, caCert: p('ca.crt'), brokerCert: p('broker.crt'), brokerKey: p('broker.key'), keystore: p('broker-keystore.pem') };
  if (existsSync(tls.keystore)) return tls;
  makeCa(dir, 'ca', '/CN=testbed-kafka-ca', 'ec');
  // ECDSA keys sign (digitalSignature); keyEncipherment is for RSA key transport.
  signLeaf(
    dir,
    'ca',
    'broker',
    '/CN=localhost',
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n',
    'ec',
  );
  writeFileSync(tls.keystore, [tls.brokerKey, tls.brokerCert, tls.caCert].map((f) => readFileSync(f, 'utf8')).join(''), { mode: 0o600 });
  return tls;
}

/** An admin kubeconfig (client certificate auth) for the suites and the control plane. */
export function writeKubeconfig(path: string, server: string, pki: Pki): void {
  writeFileSync(
    path,
    `apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: ${server}
    certificate-authority: ${pki.caCert}
users:
- name: testbed-admin
  user:
    client-certificate: ${pki.adminCert}
    client-key: ${pki.adminKey}
contexts:
- name: testbed
  context:
    cluster: testbed
    user: testbed-admin
current-context: testbed
`,
  );
}
