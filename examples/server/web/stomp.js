// A minimal STOMP 1.2 client over a browser WebSocket: enough for the demo (CONNECT,
// SUBSCRIBE, MESSAGE, ERROR, heart-beats answered). Real widgets use @stomp/stompjs.
"use strict";
class MiniStomp {
  constructor(url, headers, onMessage, onStatus) {
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.ws = new WebSocket(url, ["v12.stomp", "v11.stomp", "v10.stomp"]);
    this.buf = "";
    this.ws.onopen = () => this.send("CONNECT", Object.assign({"accept-version": "1.2", "heart-beat": "0,10000"}, headers));
    this.ws.onmessage = (e) => this.receive(e.data);
    this.ws.onclose = (e) => this.onStatus("closed (" + e.code + (e.reason ? " " + e.reason : "") + ")");
  }
  send(command, headers, body) {
    let f = command + "\n";
    for (const [k, v] of Object.entries(headers || {})) f += k + ":" + v + "\n";
    this.ws.send(f + "\n" + (body || "") + "\0");
  }
  subscribe(destination, headers) {
    this.send("SUBSCRIBE", Object.assign({id: "sub-0", destination: destination}, headers || {}));
  }
  receive(data) {
    this.buf += data;
    let nul;
    while ((nul = this.buf.indexOf("\0")) >= 0) {
      const raw = this.buf.slice(0, nul).replace(/^[\r\n]+/, "");
      this.buf = this.buf.slice(nul + 1);
      if (raw === "") continue;
      const split = raw.indexOf("\n\n");
      const head = (split >= 0 ? raw.slice(0, split) : raw).split("\n");
      const body = split >= 0 ? raw.slice(split + 2) : "";
      const command = head.shift().trim();
      const headers = {};
      for (const line of head) {
        const i = line.indexOf(":");
        if (i > 0 && !(line.slice(0, i) in headers)) headers[line.slice(0, i)] = line.slice(i + 1).replace(/\r$/, "");
      }
      if (command === "CONNECTED") this.onStatus("connected (STOMP " + headers.version + ")");
      else if (command === "MESSAGE") this.onMessage(headers, body);
      else if (command === "ERROR") this.onStatus("error: " + headers.message);
    }
    this.buf = this.buf.replace(/^[\r\n]+/, ""); // heart-beats
  }
}
