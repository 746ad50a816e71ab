// The demo page: a visitor on the Airy protocol, an operator on Bezlimit's. The operator
// token and the Airy channel id come from the URL fragment the server prints at start.
"use strict";
const params = new URLSearchParams(location.hash.slice(1));
const $ = (id) => document.getElementById(id);
const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;

function logLine(list, text, cls, meta) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  if (meta) { const m = document.createElement("span"); m.className = "meta"; m.textContent = meta; li.appendChild(m); }
  list.appendChild(li);
  list.scrollTop = list.scrollHeight;
  return li;
}

// ---- Visitor: Airy chat plugin ----
let airyToken = "";
$("v-start").onclick = async () => {
  const channel = params.get("channel");
  if (!channel) { $("v-status").textContent = "no channel id in the URL (#channel=...)"; return; }
  const res = await fetch("/airy/chatplugin.authenticate", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({channel_id: channel}),
  });
  const body = await res.json();
  if (!res.ok) { $("v-status").textContent = "authenticate: " + body.message; return; }
  airyToken = body.token;
  $("v-start").disabled = true;
  const stomp = new MiniStomp(wsBase + "/ws.chatplugin", {Authorization: "Bearer " + airyToken},
    (headers, payload) => {
      const {message} = JSON.parse(payload);
      logLine($("v-log"), message.content.text || JSON.stringify(message.content),
        message.from_contact ? "mine" : "", new Date(message.sent_at).toLocaleTimeString() + " · " + message.delivery_state);
    },
    (s) => { $("v-status").textContent = s; });
  stomp.ws.addEventListener("open", () => {
    setTimeout(() => stomp.subscribe("/user/queue/message"), 0);
    $("v-text").disabled = false; $("v-form").querySelector("button").disabled = false;
  });
};
$("v-form").onsubmit = async (e) => {
  e.preventDefault();
  const text = $("v-text").value.trim();
  if (!text) return;
  $("v-text").value = "";
  const res = await fetch("/airy/chatplugin.send", {
    method: "POST", headers: {"Content-Type": "application/json", Authorization: "Bearer " + airyToken},
    body: JSON.stringify({message: {text}}),
  });
  if (!res.ok) $("v-status").textContent = "send: " + (await res.json()).message;
};

// ---- Operator: Bezlimit broadcast and chat ----
const opToken = params.get("operator");
const chats = new Map(); // uuid -> {items: [...]}
let chatWS = null, current = "";
const statusMark = {new: "·", delivered: "✓", read: "✓✓"};

function renderChat() {
  const log = $("o-log");
  log.innerHTML = "";
  for (const m of (chats.get(current) || {items: []}).items) {
    const li = logLine(log, m.text, m.user && m.user.role === "operator" ? "mine" : "",
      (m.user ? (m.user.firstname || "") + " " : "") + statusMark[m.status]);
    li.dataset.id = m.id;
  }
}

function remember(msg) {
  const uuid = msg.chat && msg.chat.uuid;
  if (!uuid) return;
  if (!chats.has(uuid)) {
    chats.set(uuid, {items: []});
    const opt = document.createElement("option");
    opt.value = uuid; opt.textContent = uuid.slice(0, 8);
    $("o-chats").appendChild(opt);
  }
  const items = chats.get(uuid).items;
  const i = items.findIndex((m) => m.id === msg.id);
  if (i >= 0) items[i] = msg; else items.push(msg);
  if (uuid === current) renderChat();
}

if (opToken) {
  const bc = new WebSocket(wsBase + "/bezlimit/broadcast?token=" + encodeURIComponent(opToken));
  bc.onopen = () => { $("o-status").textContent = "broadcast connected"; };
  bc.onclose = (e) => { $("o-status").textContent = "broadcast closed (" + e.code + " " + e.reason + ")"; };
  bc.onmessage = (e) => {
    const f = JSON.parse(e.data);
    if (f.type === "message_added" || f.type === "message_updated") remember(f.data.message);
    if (f.type === "typing_updated" && f.data.chat && f.data.chat.uuid === current) {
      const who = f.data.user ? f.data.user.firstname : "someone";
      $("o-typing").textContent = f.data.stopped ? "" : who + " is typing" + (f.data.text ? ": " + f.data.text : "…");
    }
  };
} else {
  $("o-status").textContent = "no operator token in the URL (#operator=...)";
}

$("o-chats").onchange = () => {
  current = $("o-chats").value;
  if (chatWS) chatWS.close();
  renderChat();
  if (!current) return;
  chatWS = new WebSocket(wsBase + "/bezlimit/chat?after=0&chat=" + current + "&token=" + encodeURIComponent(opToken));
  chatWS.onopen = () => { $("o-text").disabled = false; $("o-form").querySelector("button").disabled = false; };
  chatWS.onmessage = (e) => {
    const f = JSON.parse(e.data);
    if (f.type === "message_added" || f.type === "message_updated") {
      remember(f.data.message);
      const m = f.data.message;
      if (f.type === "message_added" && m.user && m.user.role !== "operator" && document.visibilityState === "visible") {
        chatWS.send(JSON.stringify({type: "mark_message_read", data: {message_id: m.id}}));
      }
    }
    if (f.type === "message_not_added") $("o-status").textContent = "not sent: " + f.data.error.message;
    if (f.type === "error") $("o-status").textContent = "error: " + JSON.stringify(f.data);
  };
};

let typingTimer = null;
$("o-text").oninput = () => {
  if (!chatWS) return;
  chatWS.send(JSON.stringify({type: "update_typing", data: {text: $("o-text").value, stopped: false}}));
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => chatWS.send(JSON.stringify({type: "update_typing", data: {text: "", stopped: true}})), 3000);
};
$("o-form").onsubmit = (e) => {
  e.preventDefault();
  const text = $("o-text").value.trim();
  if (!text || !chatWS) return;
  $("o-text").value = "";
  chatWS.send(JSON.stringify({type: "send_message", data: {text, attachments: []}}));
};
