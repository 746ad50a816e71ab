// Package bezlimit serves the Bezlimit "Chat WS API" (0.0.21) on a Parley engine: an
// http.Handler, built on github.com/coder/websocket, that client code written for Bezlimit
// can talk to unchanged.
//
// Endpoints (relative to where the Handler is mounted):
//
//	/chat?chat=<uuid>[&after=<position>][&token=<token>]   WebSocket, visitors and operators
//	/broadcast[?token=<token>]                             WebSocket, operators
//	/update/chat /update/operators /message /global        server-to-server (Api-Token header)
//	/online-users /notifications/chat                      server-to-server (Api-Token header)
//
// Frames are JSON text frames {"type": "<snake_case>", "data": {...}}. On /chat the client
// sends send_message, mark_message_delivered, mark_message_read and update_typing; the
// server sends message_added, message_not_added (to the sender only), message_updated
// (status new → delivered → read, from the engine's receipts), user_connected,
// user_disconnected and typing_updated, plus an "error" frame for a client event it could
// not decode or perform. On /broadcast the server sends message_added, message_updated,
// typing_updated (from the engine's Feed, for the message types that belong there) and
// chat_updated, operator_updated, global_updated and chat_notification (pushed by the
// server-to-server endpoints).
//
// The translation: a chat is an engine room and its uuid is room.ID.UUID(); message ids and
// message_index are engine positions; a Bezlimit user N is the engine user named
// "bezlimit:N"; operator is chat.RoleOperator, client is chat.RoleClient. Message types map
// onto event visibility (note: operators only; system: the members whose role is the
// message's type_role; standard and bot: everyone, and /broadcast).
//
// Every frame that comes from the transcript carries a top-level "position". A /chat client
// that reconnects with ?after=<the last position it received> gets every frame it missed,
// exactly once and in order, then the live ones: the engine's Follow gives that order, and
// the Handler hands a resuming connection over from the store to the room's live stream
// without a gap or a duplicate.
//
// Each connection has one long-lived reader goroutine (started once the upgrade is done, so
// that the HTTP handler's request and stack are freed) and a bounded send queue drained by a
// writer goroutine that exists only while there is something to write; its buffers are
// 1 KiB. An idle connection costs about 9.6 KB of server memory (BenchmarkIdleConnMemory).
// A room's events are translated and encoded once, by one goroutine per room with
// connections, and queued to every connection that may see them without ever blocking: a
// connection whose queue overflows is closed with 1008 "too slow" and may resume; one whose
// write takes longer than Config.WriteTimeout is dropped. A frame over Config.ReadLimit
// closes the connection with 1009; malformed JSON and unknown event types get an error
// frame and the connection goes on.
//
// Exposed to the internet as it is: opening a chat is a policy (a client opens only the
// chats the server-to-server API put it in, an operator those Config.MayView allows, and a
// chat one may not open answers exactly as one that does not exist); every socket is pinged
// and dropped when it stops answering (Config.PingInterval, Config.PingTimeout); a socket
// whose token expires (Identity.Expires) is closed with 4401; writing client frames are rate
// limited per identity (Config.Limiter); bodies and frames that cannot be stored as sent are
// refused; a store that cannot take writes is "try again" (503); and a panic in a
// connection's or a chat's goroutine closes only what it belonged to.
//
// Every decision the public document leaves open is in decisions.go.
package bezlimit
