// Interop client: the Airy chat plugin widget's STOMP library (@stomp/stompjs 7.x, over the
// `ws` package, since Node 20 has no global WebSocket) with the widget's settings, against
// Parley's httpapi/airy (REST) and wsapi/airy (STOMP). The Go test
// wsapi/airy.TestInteropStompJS runs it and drives the server side; this script reports each
// step as one JSON line on stdout ({"event": ...}) and exits 0 when every step passed.
//
// Environment: PARLEY_BASE_URL (http://host:port), PARLEY_CHANNEL_ID, RECONNECT_DELAY_MS (the
// widget waits 5000 ms before it reconnects; the test shortens it), HEARTBEAT_IDLE_MS (how
// long to stay idle so that heart-beats flow both ways), STEP_TIMEOUT_MS.

import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

const base = process.env.PARLEY_BASE_URL;
const channelId = process.env.PARLEY_CHANNEL_ID;
const reconnectDelay = Number(process.env.RECONNECT_DELAY_MS ?? 5000);
const heartbeatIdle = Number(process.env.HEARTBEAT_IDLE_MS ?? 9000);
const stepTimeout = Number(process.env.STEP_TIMEOUT_MS ?? 15000);
const wsURL = base.replace(/^http/, 'ws') + '/ws.chatplugin';

function emit(event, data = {}) {
  process.stdout.write(JSON.stringify({ event, ...data }) + '\n');
}

function fail(msg) {
  emit('error', { message: String(msg) });
  process.exit(1);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function post(path, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`${base}/${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  const json = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${json.message}`);
  return json;
}

const textOf = (message) => message.content?.text;

// Widget holds one conversation's STOMP client, configured as the Airy widget configures it.
class Widget {
  constructor(token) {
    this.token = token;
    this.inbox = [];
    this.wake = null;
    this.seen = new Set();
    this.duplicates = 0;
    this.lastPosition = null;
    this.connects = 0;
    this.closes = 0;
    this.pings = 0;
    this.pongs = 0;
    this.errors = [];
    this.stopping = false;
    this.client = new Client({
      webSocketFactory: () => new WebSocket(wsURL, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
      connectHeaders: { Authorization: `Bearer ${token}` },
      reconnectDelay: 0,
      heartbeatIncoming: 4000,
      heartbeatOutgoing: 4000,
      debug: (line) => {
        if (line === '>>> PING') this.pings++;
      },
      onHeartbeatReceived: () => {
        this.pongs++;
      },
      onConnect: (frame) => {
        this.connects++;
        this.connected = frame.headers;
        // Resume where the last connection left off: the position of the last message.
        const headers = this.lastPosition === null ? {} : { 'x-parley-after': this.lastPosition };
        this.client.subscribe('/user/queue/message', (m) => this.receive(m), headers);
        this.signal();
      },
      onStompError: (frame) => {
        this.errors.push(frame.headers.message);
        this.signal();
      },
      onWebSocketClose: () => {
        this.closes++;
        if (this.stopping) return;
        // reconnectDelay is 0, so stompjs does not reconnect: the widget does, later, with
        // the same token.
        setTimeout(async () => {
          await this.client.deactivate();
          this.client.activate();
        }, reconnectDelay);
      },
    });
  }

  settings() {
    const c = this.client;
    return { reconnectDelay: c.reconnectDelay, heartbeatIncoming: c.heartbeatIncoming, heartbeatOutgoing: c.heartbeatOutgoing };
  }

  signal() {
    if (this.wake) {
      const w = this.wake;
      this.wake = null;
      w();
    }
  }

  receive(m) {
    const payload = JSON.parse(m.body);
    const id = payload.message.id;
    if (this.seen.has(id)) this.duplicates++;
    this.seen.add(id);
    this.lastPosition = m.headers['x-parley-position'];
    this.inbox.push({ position: m.headers['x-parley-position'], messageId: m.headers['message-id'], payload });
    this.signal();
  }

  async until(cond, what) {
    const deadline = Date.now() + stepTimeout;
    while (!cond()) {
      if (this.errors.length) throw new Error(`ERROR frame: ${this.errors.join('; ')}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, Math.min(left, 250));
      });
    }
  }

  async start() {
    this.client.activate();
    const n = this.connects;
    await this.until(() => this.connects > n, 'CONNECTED');
  }

  async next(what) {
    await this.until(() => this.inbox.length > 0, what);
    return this.inbox.shift();
  }

  async stop() {
    this.stopping = true;
    await this.client.deactivate();
  }
}

async function main() {
  // 1. A new conversation: authenticate, connect, subscribe, send; the echo comes back.
  const auth = await post('chatplugin.authenticate', { channel_id: channelId });
  if (!Array.isArray(auth.messages) || auth.messages.length !== 0) throw new Error('new conversation with messages');
  const w = new Widget(auth.token);
  await w.start();
  const sent = await post('chatplugin.send', { message: { text: 'hello from the widget' } }, auth.token);
  const echo = await w.next('the echo of our message');
  if (echo.payload.message.id !== sent.id || !echo.payload.message.from_contact) {
    throw new Error(`echo ${JSON.stringify(echo)} is not ${JSON.stringify(sent)}`);
  }
  emit('echo', {
    conversation_id: echo.payload.conversation_id,
    channel_id: echo.payload.channel_id,
    position: echo.position,
    message_id: echo.messageId,
    message: echo.payload.message,
    settings: w.settings(),
    connected: w.connected,
  });

  // 2. The agent's reply, sent from Go.
  const reply = await w.next('the agent reply');
  emit('agent_reply', { text: textOf(reply.payload.message), from_contact: reply.payload.message.from_contact, position: reply.position });

  // 3. Idle: heart-beats flow both ways and nobody drops the connection.
  await sleep(heartbeatIdle);
  emit('heartbeats', { pings: w.pings, pongs: w.pongs, closes: w.closes });

  // 4. The server drops the connection and the agent replies meanwhile; the widget
  //    reconnects with the same token and gets the reply once.
  const missed = await w.next('the reply sent while we were away');
  await sleep(300); // a duplicate would show up now
  emit('resumed_after_drop', {
    text: textOf(missed.payload.message),
    connects: w.connects,
    closes: w.closes,
    duplicates: w.duplicates,
    extra: w.inbox.length,
  });

  // 5. A resume token, then a fresh start with it: the history, a new token, a new socket.
  const { resume_token: resumeToken } = await post('chatplugin.resumeToken', {}, auth.token);
  await w.stop();
  const resumed = await post('chatplugin.authenticate', { resume_token: resumeToken });
  const w2 = new Widget(resumed.token);
  await w2.start();
  await post('chatplugin.send', { message: { text: 'back again' } }, resumed.token);
  const again = await w2.next('the echo after resuming');
  emit('resumed', {
    conversation_id: again.payload.conversation_id,
    history: resumed.messages.map(textOf),
    history_from_contact: resumed.messages.map((m) => m.from_contact),
    token_changed: resumed.token !== auth.token,
    echo: textOf(again.payload.message),
  });

  // 6. One more reply from Go on the resumed conversation.
  const last = await w2.next('the last agent reply');
  emit('done', { text: textOf(last.payload.message), duplicates: w.duplicates + w2.duplicates });
  await w2.stop();
}

const watchdog = setTimeout(() => fail('the whole run took too long'), 6 * stepTimeout);
main().then(
  () => {
    clearTimeout(watchdog);
    process.exit(0);
  },
  (err) => fail(err?.stack ?? err),
);
