// The demo page: a visitor on the Airy chat plugin protocol and an operator on Bezlimit's,
// in the same conversations. What each needs (the Airy channel id, the operator's Bezlimit
// token) comes from the demo server's demo/api/config. Plain JavaScript, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
// URLs are relative to the page, so that the demo works behind a proxy under a path prefix.
const api = (path) => new URL(path, location.href).toString();
const wsURL = (path) => {
  const u = new URL(path, location.href);
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  return u.toString();
};
const RESUME_KEY = "parley-demo.airy.resume-token";
const CHAT_KEY = "parley-demo.bezlimit.chat";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// backoff: the wait before reconnect attempt n (0, 1, 2...): short, since a demo server that
// restarts is back within seconds.
const backoff = (n) => Math.min(500 * 2 ** n, 4000);

// getJSON fetches and decodes a JSON answer; it never throws: a network failure is
// {ok: false, status: 0}.
async function call(method, path, {token, body, signal} = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = "Bearer " + token;
  try {
    const res = await fetch(api(path), {method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: "no-store"});
    let data = null;
    const text = await res.text();
    if (text) { try { data = JSON.parse(text); } catch (_) { data = {message: text}; } }
    return {ok: res.ok, status: res.status, data};
  } catch (e) {
    return {ok: false, status: 0, data: {message: e && e.name === "AbortError" ? "aborted" : "the server cannot be reached"}};
  }
}

function setStatus(el, state, text) {
  el.dataset.state = state;
  el.querySelector(".text").textContent = text;
}

function timeOf(s) {
  const d = new Date(s);
  return isNaN(d) ? "" : d.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
}

// markText renders a message's mark: sent, delivered or read.
function markNode(state) {
  const span = document.createElement("span");
  span.className = "mark" + (state === "read" ? " read" : "");
  span.textContent = state === "sent" ? "✓" : "✓✓";
  const wrap = document.createElement("span");
  wrap.className = "state";
  wrap.dataset.state = state;
  wrap.append(span, state);
  return wrap;
}

// A Log renders an ordered list of messages, each once: items are keyed, and an item seen
// again replaces the one on screen.
class Log {
  constructor(el) { this.el = el; this.items = new Map(); }
  clear() { this.el.textContent = ""; this.items.clear(); }
  upsert(key, render) {
    const stick = this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 40;
    const li = document.createElement("li");
    render(li);
    li.dataset.key = key;
    const old = this.items.get(key);
    if (old) old.replaceWith(li); else this.el.appendChild(li);
    this.items.set(key, li);
    if (stick || !old) this.el.scrollTop = this.el.scrollHeight;
  }
}

// ---- Layout: two panes side by side, or tabs at phone width ----
const narrow = matchMedia("(max-width: 760px)");
const tabs = {
  active: "visitor",
  show(name) {
    this.active = name;
    for (const p of ["visitor", "operator"]) {
      $(p).classList.toggle("active", p === name);
      $("tab-" + p).setAttribute("aria-selected", String(p === name));
      if (p === name) $("tab-" + p).querySelector(".dot").hidden = true;
    }
    onSeen();
  },
  // seen reports whether a pane is on screen for a person: the page is in front, and the
  // pane is not behind the other tab.
  seen(name) {
    return document.visibilityState === "visible" && (!narrow.matches || this.active === name);
  },
  nudge(name) { if (!this.seen(name)) $("tab-" + name).querySelector(".dot").hidden = false; },
};
$("tab-visitor").onclick = () => tabs.show("visitor");
$("tab-operator").onclick = () => tabs.show("operator");
function onSeen() { visitor.markSeen(); operator.markSeen(); }
document.addEventListener("visibilitychange", onSeen);
narrow.addEventListener("change", onSeen);

// ---- Visitor: the Airy chat plugin ----
const visitor = {
  cfg: null,
  token: "",            // the auth token (1 h)
  resume: localStorage.getItem(RESUME_KEY) || "",
  log: new Log($("v-log")),
  msgs: new Map(),      // message id -> {id, pos, text, mine, sentAt}
  lastPos: 0,           // the last x-parley-position received: where a reconnect resumes
  subscribedOnce: false,
  stomp: null,
  online: false,
  attempt: 0,
  generation: 0,        // bumped by a new conversation: stale callbacks stop
  other: {delivered: 0, read: 0, typing: []}, // the operator side, from demo/api/visitor/state
  marked: {delivered: 0, read: 0},

  async init(cfg) {
    this.cfg = cfg;
    if (!this.resume) { this.showStart(); return; }
    await this.authenticate({resume_token: this.resume});
  },

  showStart() {
    setStatus($("v-status"), "wait", "no conversation yet");
    $("v-start-box").hidden = false;
    $("v-new").hidden = true;
    this.setInput(false);
  },

  async start() {
    $("v-start").disabled = true;
    await this.authenticate({channel_id: this.cfg.airy_channel_id});
    $("v-start").disabled = false;
  },

  // authenticate gets an auth token with the channel id (a new conversation) or the resume
  // token (this browser's conversation and its history), then connects.
  async authenticate(body) {
    const gen = this.generation;
    setStatus($("v-status"), "wait", "authenticating…");
    const r = await call("POST", "airy/chatplugin.authenticate", {body});
    if (gen !== this.generation) return;
    if (r.status === 0 || r.status >= 500 || r.status === 429) { // try again later
      setStatus($("v-status"), "off", "offline: " + r.data.message);
      setTimeout(() => this.authenticate(body), backoff(this.attempt++));
      return;
    }
    if (!r.ok) {
      if (body.resume_token) { // expired or from another server: start over
        localStorage.removeItem(RESUME_KEY);
        this.resume = "";
        this.showStart();
        return;
      }
      setStatus($("v-status"), "off", "authenticate: " + r.data.message);
      return;
    }
    this.token = r.data.token;
    $("v-start-box").hidden = true;
    $("v-new").hidden = false;
    for (const m of r.data.messages || []) this.add(m, 0);
    // A fresh resume token each time, so that it lives 7 days from the last visit.
    const rt = await call("POST", "airy/chatplugin.resumeToken", {token: this.token});
    if (gen !== this.generation) return;
    if (rt.ok && rt.data.resume_token) {
      this.resume = rt.data.resume_token;
      localStorage.setItem(RESUME_KEY, this.resume);
    }
    this.connect();
    this.poll();
  },

  connect() {
    const gen = this.generation;
    let reauth = false;
    setStatus($("v-status"), "wait", "connecting…");
    const stomp = new MiniStomp(wsURL("ws.chatplugin"), {Authorization: "Bearer " + this.token}, {
      connected: () => {
        // The first subscription of this page takes the whole conversation (positions of
        // the history are unknown); a reconnect takes what came after the last one seen.
        const after = this.subscribedOnce ? this.lastPos : 0;
        stomp.subscribe("sub-0", "/user/queue/message", {"x-parley-after": after, receipt: "subscribed"});
      },
      receipt: (id) => {
        if (id !== "subscribed" || gen !== this.generation) return;
        this.subscribedOnce = true;
        this.attempt = 0;
        this.online = true;
        setStatus($("v-status"), "on", "connected · STOMP over WebSocket");
        this.setInput(true);
      },
      message: (headers, body) => {
        if (gen !== this.generation) return;
        let payload;
        try { payload = JSON.parse(body); } catch (_) { return; }
        const pos = parseInt(headers["x-parley-position"], 10) || 0;
        if (pos > this.lastPos) this.lastPos = pos;
        this.add(payload.message, pos);
      },
      error: (msg) => { if (/401/.test(msg)) reauth = true; },
      closed: () => {
        if (this.stomp !== stomp) return; // replaced on purpose
        this.stomp = null;
        this.online = false;
        this.setInput(false);
        if (gen !== this.generation) return;
        const wait = backoff(this.attempt++);
        setStatus($("v-status"), "off", "offline: reconnecting in " + Math.round(wait / 100) / 10 + " s");
        setTimeout(() => {
          if (gen !== this.generation) return;
          // An expired auth token gets a new one with the resume token, as the widget does.
          if (reauth) this.authenticate({resume_token: this.resume}); else this.connect();
        }, wait);
      },
    });
    this.stomp = stomp;
  },

  // add shows a message once, whatever way it came (history, replay, live).
  add(m, pos) {
    if (!m || !m.id) return;
    const old = this.msgs.get(m.id);
    const msg = {
      id: m.id, pos: pos || (old && old.pos) || 0, mine: !!m.from_contact, sentAt: m.sent_at,
      text: m.content && typeof m.content.text === "string" ? m.content.text : JSON.stringify(m.content),
    };
    this.msgs.set(m.id, msg);
    this.render(msg);
    if (!old && !msg.mine) tabs.nudge("visitor");
    if (!msg.mine && msg.pos) this.markSoon();
  },

  render(msg) {
    this.log.upsert(msg.id, (li) => {
      if (msg.mine) li.className = "mine";
      else { const who = document.createElement("span"); who.className = "who"; who.textContent = "Operator"; li.append(who); }
      li.append(msg.text);
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.append(timeOf(msg.sentAt));
      if (msg.mine) meta.append(" ", markNode(this.stateOf(msg)));
      li.append(meta);
    });
  },

  stateOf(msg) {
    if (msg.pos && msg.pos <= this.other.read) return "read";
    if (msg.pos && msg.pos <= this.other.delivered) return "delivered";
    return "sent";
  },

  setInput(on) {
    $("v-text").disabled = !on;
    $("v-send").disabled = !on;
  },

  async send(text) {
    $("v-send").disabled = true;
    const r = await call("POST", "airy/chatplugin.send", {token: this.token, body: {message: {text}}});
    $("v-send").disabled = !this.online;
    if (!r.ok) {
      setStatus($("v-status"), this.online ? "on" : "off", "not sent: " + r.data.message);
      return false;
    }
    this.typing.stop();
    return true; // the message shows when it comes back on the socket, as in the widget
  },

  // ---- read marks and typing: the demo server's API (Airy has neither) ----
  markTimer: 0,
  markSoon() {
    clearTimeout(this.markTimer);
    this.markTimer = setTimeout(() => this.markSeen(), 150);
  },
  async markSeen() {
    if (!this.token) return;
    let last = 0;
    for (const m of this.msgs.values()) if (!m.mine && m.pos > last) last = m.pos;
    const body = {};
    if (last > this.marked.delivered) body.delivered = last;
    if (tabs.seen("visitor") && last > this.marked.read) body.read = last;
    if (!body.delivered && !body.read) return;
    const r = await call("POST", "demo/api/visitor/receipt", {token: this.token, body});
    if (r.ok) {
      this.marked.delivered = Math.max(this.marked.delivered, r.data.delivered || 0);
      this.marked.read = Math.max(this.marked.read, r.data.read || 0);
    }
  },

  typing: {
    sentAt: 0, sentText: "", timer: 0, idle: 0, active: false,
    input(text) {
      clearTimeout(this.idle);
      if (!text) { this.stop(); return; }
      this.idle = setTimeout(() => this.stop(), 5000);
      if (this.timer) return;
      const wait = Math.max(0, 1000 - (Date.now() - this.sentAt)); // one call a second at most
      this.timer = setTimeout(() => {
        this.timer = 0;
        const now = $("v-text").value.trim();
        if (!now || now === this.sentText) return;
        this.sentAt = Date.now();
        this.sentText = now;
        this.active = true;
        call("POST", "demo/api/visitor/typing", {token: visitor.token, body: {text: now.slice(-60), stopped: false}});
      }, wait);
    },
    stop() {
      clearTimeout(this.idle);
      clearTimeout(this.timer);
      this.timer = 0;
      this.sentText = "";
      if (!this.active || !visitor.token) return;
      this.active = false;
      call("POST", "demo/api/visitor/typing", {token: visitor.token, body: {text: "", stopped: true}});
    },
  },

  // poll follows the operator side's marks and typing (a long poll: the server answers when
  // they change).
  async poll() {
    const gen = this.generation;
    if (this.polling === gen) return;
    this.polling = gen;
    let key = "", fails = 0;
    while (gen === this.generation) {
      const r = await call("GET", "demo/api/visitor/state?known=" + encodeURIComponent(key), {token: this.token});
      if (gen !== this.generation) break;
      if (!r.ok) { await sleep(backoff(fails++)); continue; }
      fails = 0;
      key = r.data.key;
      this.other = r.data;
      for (const m of this.msgs.values()) if (m.mine) this.render(m);
      $("v-typing").textContent = this.other.typing.map((t) => t.name + " is typing…").join(" ");
    }
  },

  // reset forgets this browser's conversation.
  reset() {
    this.generation++;
    this.typing.stop();
    localStorage.removeItem(RESUME_KEY);
    const s = this.stomp;
    this.stomp = null;
    if (s) s.close();
    Object.assign(this, {token: "", resume: "", lastPos: 0, subscribedOnce: false, online: false, attempt: 0,
      other: {delivered: 0, read: 0, typing: []}, marked: {delivered: 0, read: 0}});
    this.msgs.clear();
    this.log.clear();
    $("v-typing").textContent = "";
    this.showStart();
  },
};

$("v-start").onclick = () => visitor.start();
$("v-new").onclick = () => visitor.reset();
$("v-text").oninput = () => visitor.typing.input($("v-text").value.trim());
$("v-form").onsubmit = async (e) => {
  e.preventDefault();
  const text = $("v-text").value.trim();
  if (!text || !visitor.online) return;
  if (await visitor.send(text) && $("v-text").value.trim() === text) $("v-text").value = "";
};

// ---- Operator: Bezlimit's /broadcast and /chat ----
const operator = {
  cfg: null,
  chats: new Map(),   // uuid -> {uuid, lastText, unread, msgs: Map id -> message, lastPos, marked}
  current: "",
  log: new Log($("o-log")),
  bc: null, bcAttempt: 0,
  ws: null, wsAttempt: 0, online: false,
  typists: new Map(), // user key -> text, in the current chat
  pending: null,      // the text sent and not yet seen back

  init(cfg) {
    this.cfg = cfg;
    this.current = localStorage.getItem(CHAT_KEY) || "";
    this.connectBroadcast();
  },

  isMe(user) { return !!user && user.role === this.cfg.operator.role && user.id === this.cfg.operator.id; },
  userKey(user) { return user ? user.role + ":" + user.id + ":" + (user.firstname || "") : "system"; },
  nameOf(user) {
    if (!user) return "System";
    if (user.role === "client" && !user.id) return "Visitor";
    return [user.firstname, user.lastname].filter(Boolean).join(" ") || (user.role === "client" ? "Visitor" : user.role || "Someone");
  },

  chat(uuid) {
    let c = this.chats.get(uuid);
    if (!c) {
      c = {uuid, lastText: "", unread: 0, msgs: new Map(), lastPos: 0, marked: {delivered: 0, read: 0}, lastAt: ""};
      this.chats.set(uuid, c);
    }
    return c;
  },

  // loadChats fills the list from the demo server (Bezlimit has no call for it).
  async loadChats() {
    const r = await call("GET", "demo/api/chats", {token: this.cfg.operator_token});
    if (!r.ok) return;
    for (const c of r.data.chats) {
      const chat = this.chat(c.uuid);
      if (!chat.lastText) chat.lastText = c.last_text;
      chat.lastAt = c.last_at;
    }
    if (!this.chats.has(this.current)) this.current = "";
    if (!this.current && r.data.chats.length) this.current = r.data.chats[0].uuid;
    this.renderChats();
    if (this.current && !this.ws) this.open(this.current);
  },

  renderChats() {
    const ul = $("o-chats");
    ul.textContent = "";
    $("o-empty").hidden = this.chats.size > 0;
    for (const c of this.chats.values()) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.chat = c.uuid;
      b.setAttribute("aria-current", String(c.uuid === this.current));
      const id = document.createElement("span"); id.className = "id"; id.textContent = "chat " + c.uuid.slice(0, 8);
      const last = document.createElement("span"); last.className = "last"; last.textContent = c.lastText || "(no message yet)";
      b.append(id, last);
      if (c.unread) { const u = document.createElement("span"); u.className = "unread"; u.textContent = c.unread; b.append(u); }
      b.onclick = () => this.open(c.uuid);
      li.append(b);
      ul.prepend(li); // newest first
    }
  },

  connectBroadcast() {
    setStatus($("o-status"), "wait", "connecting…");
    const ws = new WebSocket(wsURL("bezlimit/broadcast?token=" + encodeURIComponent(this.cfg.operator_token)));
    this.bc = ws;
    ws.onopen = () => { this.bcAttempt = 0; this.loadChats(); this.showOnline(); };
    ws.onmessage = (e) => {
      let f;
      try { f = JSON.parse(e.data); } catch (_) { return; }
      const d = f.data || {};
      if (f.type === "chat_updated" && d.chat && d.chat.uuid) {
        const isNew = !this.chats.has(d.chat.uuid);
        this.chat(d.chat.uuid);
        this.renderChats();
        if (isNew) tabs.nudge("operator");
        if (!this.current) this.open(d.chat.uuid);
      } else if (f.type === "message_added" && d.message && d.message.chat) {
        const c = this.chat(d.message.chat.uuid);
        c.lastText = d.message.text;
        if (c.uuid !== this.current && !this.isMe(d.message.user)) c.unread++;
        this.renderChats();
        if (!this.isMe(d.message.user)) tabs.nudge("operator");
        if (!this.current) this.open(c.uuid);
      }
    };
    ws.onerror = () => {};
    ws.onclose = () => {
      if (this.bc !== ws) return;
      this.bc = null;
      this.showOnline();
      const wait = backoff(this.bcAttempt++);
      setTimeout(() => this.connectBroadcast(), wait);
    };
  },

  // open shows a chat: its socket replays what this page has not seen of it (all of it the
  // first time), then carries it live.
  open(uuid) {
    if (this.ws) { const old = this.ws; this.ws = null; old.close(1000); }
    this.online = false;
    this.showOnline();
    if (uuid !== this.current) {
      this.current = uuid;
      this.typists.clear();
      this.renderTyping();
      this.log.clear();
      for (const m of [...this.chat(uuid).msgs.values()].sort((a, b) => a.id - b.id)) this.render(m);
    }
    localStorage.setItem(CHAT_KEY, uuid);
    const c = this.chat(uuid);
    c.unread = 0;
    this.renderChats();
    // One receipt can give several frames of the same position: resume one before the last.
    const after = Math.max(c.lastPos - 1, 0);
    const ws = new WebSocket(wsURL("bezlimit/chat?chat=" + encodeURIComponent(uuid) + "&after=" + after +
      "&token=" + encodeURIComponent(this.cfg.operator_token)));
    this.ws = ws;
    ws.onopen = () => { this.wsAttempt = 0; this.online = true; this.showOnline(); };
    ws.onmessage = (e) => {
      let f;
      try { f = JSON.parse(e.data); } catch (_) { return; }
      if (f.position > c.lastPos) c.lastPos = f.position;
      this.frame(c, f);
    };
    ws.onerror = () => {};
    ws.onclose = (e) => {
      if (this.ws !== ws) return; // closed on purpose
      this.ws = null;
      this.online = false;
      this.showOnline();
      if (this.pending && !$("o-text").value) $("o-text").value = this.pending.text; // not confirmed: send again
      if (e.code === 4404) { this.chats.delete(uuid); this.current = ""; this.renderChats(); return; }
      setTimeout(() => { if (this.current === uuid && !this.ws) this.open(uuid); }, backoff(this.wsAttempt++));
    };
  },

  frame(c, f) {
    const d = f.data || {};
    switch (f.type) {
      case "message_added":
      case "message_updated": {
        const m = d.message;
        if (!m) return;
        const isNew = !c.msgs.has(m.id);
        c.msgs.set(m.id, m);
        if (f.type === "message_added") {
          this.typists.delete(this.userKey(m.user)); // a message ends its author's typing
          this.renderTyping();
          if (this.isMe(m.user) && this.pending && m.text === this.pending.text) {
            if ($("o-text").value === this.pending.text) $("o-text").value = "";
            this.pending = null;
          }
          if (isNew && m.text) { c.lastText = m.text; this.renderChats(); }
        }
        if (c.uuid === this.current) this.render(m);
        if (!this.isMe(m.user) && m.type !== "system") this.markSoon();
        break;
      }
      case "typing_updated":
        if (this.isMe(d.user)) return;
        if (d.stopped) this.typists.delete(this.userKey(d.user));
        else this.typists.set(this.userKey(d.user), this.nameOf(d.user) + (d.text ? ": " + d.text : ""));
        this.renderTyping();
        break;
      case "message_not_added":
        setStatus($("o-status"), "on", "not sent: " + (d.error ? d.error.message : "refused"));
        if (this.pending && !$("o-text").value) $("o-text").value = this.pending.text;
        this.pending = null;
        break;
      case "error":
        setStatus($("o-status"), "on", "error: " + JSON.stringify(d));
        break;
    }
  },

  render(m) {
    this.log.upsert(m.id, (li) => {
      const mine = this.isMe(m.user);
      if (m.type === "system") li.className = "note";
      else if (mine) li.className = "mine";
      if (!mine && m.type !== "system") {
        const who = document.createElement("span"); who.className = "who"; who.textContent = this.nameOf(m.user); li.append(who);
      }
      li.append(m.text || "");
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.append(timeOf(m.send_time));
      if (mine) meta.append(" ", markNode({new: "sent", delivered: "delivered", read: "read"}[m.status] || "sent"));
      li.append(meta);
    });
  },

  renderTyping() {
    $("o-typing").textContent = [...this.typists.values()].map((t) => t.replace(/^([^:]*)/, "$1 is typing")).join(" · ");
  },

  showOnline() {
    const on = !!this.bc && this.bc.readyState === WebSocket.OPEN;
    const chatOn = this.online && !!this.ws;
    if (on && chatOn) setStatus($("o-status"), "on", "connected · /broadcast and /chat");
    else if (on && !this.current) setStatus($("o-status"), "on", "connected · /broadcast");
    else setStatus($("o-status"), on ? "wait" : "off", on ? "connecting to the chat…" : "offline: reconnecting…");
    $("o-text").disabled = !chatOn;
    $("o-send").disabled = !chatOn;
  },

  markTimer: 0,
  markSoon() {
    clearTimeout(this.markTimer);
    this.markTimer = setTimeout(() => this.markSeen(), 150);
  },
  // markSeen sends the delivered mark for the last message of the other side in the chat on
  // screen, and its read mark if the operator pane is in front.
  markSeen() {
    const c = this.chats.get(this.current);
    if (!c || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    let last = 0;
    for (const m of c.msgs.values()) if (!this.isMe(m.user) && m.type !== "system" && m.id > last) last = m.id;
    if (last > c.marked.delivered) {
      this.ws.send(JSON.stringify({type: "mark_message_delivered", data: {message_id: last}}));
      c.marked.delivered = last;
    }
    if (tabs.seen("operator") && last > c.marked.read) {
      this.ws.send(JSON.stringify({type: "mark_message_read", data: {message_id: last}}));
      c.marked.read = last;
    }
  },

  typing: {
    sentAt: 0, sentText: "", timer: 0, idle: 0, active: false,
    input(text) {
      clearTimeout(this.idle);
      if (!text) { this.stop(); return; }
      this.idle = setTimeout(() => this.stop(), 5000);
      if (this.timer) return;
      const wait = Math.max(0, 1000 - (Date.now() - this.sentAt));
      this.timer = setTimeout(() => {
        this.timer = 0;
        const now = $("o-text").value.trim();
        if (!now || now === this.sentText) return;
        this.sentAt = Date.now();
        this.sentText = now;
        this.active = operator.sendFrame("update_typing", {text: now.slice(-60), stopped: false});
      }, wait);
    },
    stop() {
      clearTimeout(this.idle);
      clearTimeout(this.timer);
      this.timer = 0;
      this.sentText = "";
      if (this.active) operator.sendFrame("update_typing", {text: "", stopped: true});
      this.active = false;
    },
  },

  sendFrame(type, data) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({type, data}));
    return true;
  },

  send(text) {
    if (!this.sendFrame("send_message", {text, attachments: []})) return false;
    this.pending = {text};
    this.typing.active = false; // a message ends typing on the server
    this.typing.stop();
    return true;
  },
};

$("o-text").oninput = () => operator.typing.input($("o-text").value.trim());
$("o-form").onsubmit = (e) => {
  e.preventDefault();
  const text = $("o-text").value.trim();
  if (text && operator.send(text)) $("o-text").value = "";
};

// ---- Start: the page asks the demo server what it needs ----
(async function main() {
  for (let n = 0; ; n++) {
    const r = await call("GET", "demo/api/config");
    if (r.ok) {
      visitor.init(r.data);
      operator.init(r.data);
      return;
    }
    const msg = r.status === 404 ? "this server runs without the demo (-demo=false)" : "offline: " + r.data.message;
    setStatus($("v-status"), "off", msg);
    setStatus($("o-status"), "off", msg);
    if (r.status === 404) return;
    await sleep(backoff(n));
  }
})();
