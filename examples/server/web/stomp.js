// A small STOMP 1.2 client over a browser WebSocket, enough for the demo: CONNECT, SUBSCRIBE
// with a receipt, MESSAGE, RECEIPT, ERROR and heart-beats both ways. One instance is one
// connection: it never reconnects by itself (the page decides when, and with what). Real
// widgets use @stomp/stompjs.
"use strict";

class MiniStomp {
  // handlers: {connected(headers), message(headers, body), receipt(id), error(message),
  // closed(code)}; each is optional.
  constructor(url, connectHeaders, handlers) {
    this.h = handlers;
    this.buf = "";
    this.done = false;
    this.lastIn = Date.now();
    this.ws = new WebSocket(url, ["v12.stomp", "v11.stomp", "v10.stomp"]);
    this.ws.onopen = () => {
      this.frame("CONNECT", Object.assign({"accept-version": "1.2,1.1", "heart-beat": "10000,10000"}, connectHeaders));
    };
    this.ws.onmessage = (e) => { this.lastIn = Date.now(); this.receive(typeof e.data === "string" ? e.data : ""); };
    this.ws.onerror = () => {}; // the close that follows says it
    this.ws.onclose = (e) => this.finish(e.code);
  }

  frame(command, headers, body) {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    let f = command + "\n";
    for (const [k, v] of Object.entries(headers || {})) f += k + ":" + String(v).replace(/[\r\n:\\]/g, "") + "\n";
    this.ws.send(f + "\n" + (body || "") + "\0");
    return true;
  }

  subscribe(id, destination, headers) {
    return this.frame("SUBSCRIBE", Object.assign({id, destination, ack: "auto"}, headers || {}));
  }

  close() {
    if (this.done) return;
    try { this.ws.close(1000); } catch (_) { /* already closing */ }
    this.finish(1000);
  }

  finish(code) {
    if (this.done) return;
    this.done = true;
    clearInterval(this.beat);
    if (this.h.closed) this.h.closed(code);
  }

  // heartBeats starts the heart-beats negotiated in CONNECTED: a newline every sx ms, and the
  // connection is dead after twice sy ms of silence from the server.
  heartBeats(server) {
    const [sx, sy] = (server || "0,0").split(",").map((n) => parseInt(n, 10) || 0);
    const send = sy > 0 ? Math.max(10000, sy) : 0;
    const expect = sx > 0 ? Math.max(10000, sx) : 0;
    if (!send && !expect) return;
    const every = Math.min(send || expect, expect || send) / 2;
    let lastOut = Date.now();
    this.beat = setInterval(() => {
      const now = Date.now();
      if (send && now - lastOut >= send / 2 && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send("\n");
        lastOut = now;
      }
      if (expect && now - this.lastIn > 2 * expect) this.close();
    }, every);
  }

  receive(data) {
    this.buf += data;
    let nul;
    while ((nul = this.buf.indexOf("\0")) >= 0) {
      const raw = this.buf.slice(0, nul).replace(/^[\r\n]+/, "");
      this.buf = this.buf.slice(nul + 1);
      if (raw === "") continue;
      const split = raw.search(/\r?\n\r?\n/);
      const head = (split >= 0 ? raw.slice(0, split) : raw).split(/\r?\n/);
      const body = split >= 0 ? raw.slice(split).replace(/^\r?\n\r?\n/, "") : "";
      const command = head.shift().trim();
      const headers = {};
      for (const line of head) {
        const i = line.indexOf(":");
        // STOMP 1.2: the first of repeated headers wins; values are escaped.
        if (i > 0 && !(line.slice(0, i) in headers)) headers[line.slice(0, i)] = unescapeHeader(line.slice(i + 1));
      }
      if (command === "CONNECTED") {
        this.heartBeats(headers["heart-beat"]);
        if (this.h.connected) this.h.connected(headers);
      } else if (command === "MESSAGE") {
        if (this.h.message) this.h.message(headers, body);
      } else if (command === "RECEIPT") {
        if (this.h.receipt) this.h.receipt(headers["receipt-id"]);
      } else if (command === "ERROR") {
        if (this.h.error) this.h.error(headers.message || body);
      }
    }
    this.buf = this.buf.replace(/^[\r\n]+/, ""); // heart-beats
  }
}

function unescapeHeader(v) {
  return v.replace(/\\([rnc\\])/g, (_, c) => ({r: "\r", n: "\n", c: ":", "\\": "\\"})[c]);
}
