// A real head and nodes for the browser tests and `iogrid bench ui`: processes of the iogrid binary, ports
// chosen at run time, a private token and state folder, everything killed and removed by stop().
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function findChromium() {
  for (const p of [process.env.IOGRID_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser']) if (p && existsSync(p)) return p;
  return null;
}

function waitForLine(proc, pattern, ms, what) {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what}: no '${pattern}' within ${ms} ms; output:\n${out}`)), ms);
    const on = (d) => {
      out += d;
      const m = out.match(pattern);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    proc.stdout.on('data', on);
    proc.stderr.on('data', on);
    proc.on('exit', (code) => reject(new Error(`${what} exited (${code}) before '${pattern}':\n${out}`)));
  });
}

export class Cluster {
  constructor(bin) {
    this.bin = bin;
    this.dir = mkdtempSync(join(tmpdir(), 'iogrid-ui-'));
    this.token = join(this.dir, 'token');
    this.state = join(this.dir, 'state');
    this.procs = new Map();
    this.log = '';
  }
  run(name, args) {
    const p = spawn(this.bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', (d) => (this.log += `[${name}] ${d}`));
    p.stderr.on('data', (d) => (this.log += `[${name}] ${d}`));
    this.procs.set(name, p);
    return p;
  }
  async startHead(extra = []) {
    const args = ['head', '--port', String(this.port || 0), '--dashboard-port', String(this.dashboardPort || 0), '--token-file', this.token,
      '--state', this.state, '--history', 'interval=500ms', '--log-level', 'warn', ...extra];
    const p = this.run('head', args);
    const m = await waitForLine(p, /IOGRID_DASHBOARD_PORT=(\d+)/, 20000, 'the head');
    this.port = Number(this.log.match(/IOGRID_HEAD_PORT=(\d+)/)[1]);
    this.dashboardPort = Number(m[1]);
    this.url = `http://127.0.0.1:${this.dashboardPort}`;
    return this;
  }
  // telemetry: [{index, temperature_c, ...}] written to the node's --telemetry-file (rewrite with setTelemetry)
  startNode(name, args, telemetry) {
    const file = join(this.dir, `${name}.telemetry.json`);
    writeFileSync(file, JSON.stringify(telemetry || []));
    return this.run(name, ['node', '--address', `127.0.0.1:${this.port}`, '--token-file', this.token, '--name', name,
      '--log-level', 'warn', '--telemetry-file', file, ...args]);
  }
  setTelemetry(name, telemetry) {
    writeFileSync(join(this.dir, `${name}.telemetry.json`), JSON.stringify(telemetry));
  }
  key() {
    return readFileSync(this.token, 'utf8').trim();
  }
  async api(path, init = {}) {
    const r = await fetch(this.url + path, { ...init, headers: { Authorization: `Bearer ${this.key()}`, ...(init.headers || {}) } });
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return r.json();
  }
  async waitFor(fn, ms, what) {
    const t0 = Date.now();
    let last;
    while (Date.now() - t0 < ms) {
      try {
        if ((last = await fn())) return last;
      } catch (e) {
        last = e;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what}: not within ${ms} ms (last: ${last})`);
  }
  kill(name, signal = 'SIGKILL') {
    const p = this.procs.get(name);
    if (p && p.exitCode === null) p.kill(signal);
    return new Promise((r) => (p && p.exitCode === null ? p.on('exit', r) : r()));
  }
  async stop() {
    await Promise.all([...this.procs.keys()].map((n) => this.kill(n)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const chromeFlags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--no-first-run', '--disable-dev-shm-usage'];
