// Runs the patched plugin's reducer and actions (src/states/VerifyState.js) under Node against a running
// callerauth stack, the way Flex runs them: redux-promise-middleware's _PENDING/_FULFILLED/_REJECTED
// dispatches, Manager.getInstance().user.token from @twilio/flex-ui (a stub here), fetch, localStorage.
//
//   node harness.mjs <patched plugin folder>     with a JSON scenario on stdin:
//   {"api": "...", "outbox": "...", "tokens": {"a": "...", "b": "..."}, "to": "+1...", "lockTo": "+1...",
//    "taskSid": "WT...", "maxFailedChecks": 3}
// It prints one JSON object: every step's state and every request the plugin sent.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const pluginDir = process.argv[2];
const scenario = JSON.parse(readFileSync(0, 'utf8'));

// @twilio/flex-ui, as far as the reducer uses it: Manager.getInstance().user.token.
const stub = join(pluginDir, 'node_modules', '@twilio', 'flex-ui');
mkdirSync(stub, { recursive: true });
writeFileSync(join(stub, 'package.json'), JSON.stringify({ name: '@twilio/flex-ui', type: 'module', exports: './index.js' }));
writeFileSync(
  join(stub, 'index.js'),
  'export const Manager = { getInstance: () => globalThis.__flexManager };\n',
);
// The plugin's package.json has no "type": an .mjs copy beside the original is read as the ES module it is.
const reducerFile = join(pluginDir, 'src', 'states', 'VerifyState.mjs');
writeFileSync(reducerFile, readFileSync(join(pluginDir, 'src', 'states', 'VerifyState.js')));

const storage = new Map();
globalThis.localStorage = {
  getItem: (key) => (storage.has(key) ? storage.get(key) : null),
  setItem: (key, value) => storage.set(key, String(value)),
};
globalThis.__flexManager = { user: { token: '' } };
process.env.REACT_APP_SERVICE_BASE_URL = scenario.api;

const requests = [];
const realFetch = globalThis.fetch;
globalThis.fetch = (url, options = {}) => {
  const body = options.body instanceof URLSearchParams ? Object.fromEntries(options.body) : undefined;
  const query = Object.fromEntries(new URL(url).searchParams);
  requests.push({ url: String(url).split('?')[0], method: options.method || 'GET', headers: options.headers || {}, body, query });
  return realFetch(url, options);
};

const { Actions, reduce, secondsToResend } = await import(pathToFileURL(reducerFile).href);

let state = reduce(undefined, { type: '@@INIT' });
const steps = [];

// What redux-promise-middleware does with { type, payload: Promise }.
async function dispatch(action) {
  if (!(action.payload instanceof Promise)) {
    state = reduce(state, action);
    return;
  }
  state = reduce(state, { type: `${action.type}_PENDING` });
  try {
    state = reduce(state, { type: `${action.type}_FULFILLED`, payload: await action.payload });
  } catch (error) {
    state = reduce(state, { type: `${action.type}_REJECTED`, payload: error });
  }
}

// An action creator starts its request when called, so it is called here, after the token is set.
async function step(name, makeAction, token) {
  globalThis.__flexManager.user.token = token;
  const before = requests.length;
  await dispatch(makeAction());
  steps.push({ name, state: { ...state }, secondsToResend: secondsToResend(state), requests: requests.slice(before) });
}

async function latestCode(to) {
  const messages = await (await realFetch(`${scenario.outbox}?to=${encodeURIComponent(to)}`)).json();
  return messages[messages.length - 1].code;
}

const { to, taskSid, tokens, lockTo } = scenario;
await dispatch(Actions.loadState(taskSid));
await step('start', () => Actions.startVerification(to, taskSid), tokens.a);
await step('resend at once', () => Actions.startVerification(to, taskSid), tokens.a);
await step('wrong code', () => Actions.checkVerification('000000', to, taskSid), tokens.a);
await step('no token', () => Actions.checkVerification('000000', to, taskSid), '');
await step('customer before approval', () => Actions.loadCustomer(to, taskSid), tokens.a);
// Flex renews the agent's token during a shift: the next call carries the new one.
const code = await latestCode(to);
await step('right code', () => Actions.checkVerification(code, to, taskSid), tokens.renewed);
await step('customer', () => Actions.loadCustomer(to, taskSid), tokens.renewed);
await step('customer for another agent', () => Actions.loadCustomer(to, taskSid), tokens.b);
await step('cancel', () => Actions.cancelVerification(to, taskSid), tokens.renewed);
await step('customer after cancel', () => Actions.loadCustomer(to, taskSid), tokens.renewed);

// A lockout: the backend's message, not "Incorrect token.".
await dispatch(Actions.loadState('WT' + 'f'.repeat(32)));
await step('start (lock)', () => Actions.startVerification(lockTo, null), tokens.a);
for (let i = 1; i <= scenario.maxFailedChecks; i += 1) {
  await step(`wrong code ${i} (lock)`, () => Actions.checkVerification('000000', lockTo, null), tokens.a);
}

process.stdout.write(JSON.stringify({ steps, storage: Object.fromEntries(storage) }));
