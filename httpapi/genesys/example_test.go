package genesys_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/parley-chat/chat"
	"github.com/parley-chat/chat/httpapi/genesys"
	"github.com/parley-chat/chat/storage/memory"
)

// Example mounts the Genesys Chat API v2 under its usual base, starts a chat as a web client
// would, lets an agent join and answer from Go, and polls the transcript with refresh.
func Example() {
	ctx := context.Background()
	store := memory.New()
	defer store.Close()
	engine, _ := chat.Open(ctx, store)
	defer engine.Close()

	h, err := genesys.New(engine, genesys.Config{ServiceNames: []string{"customer-support"}, Alias: "117"})
	if err != nil {
		panic(err)
	}
	defer h.Close()
	mux := http.NewServeMux()
	mux.Handle("/genesys/2/chat/", http.StripPrefix("/genesys/2/chat", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	post := func(path string, form url.Values) genesys.Response {
		resp, err := http.PostForm(srv.URL+"/genesys/2/chat/customer-support"+path, form)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		var r genesys.Response
		json.NewDecoder(resp.Body).Decode(&r)
		return r
	}
	show := func(r genesys.Response) {
		for _, m := range r.Messages {
			fmt.Printf("%d %s %s/%d/%s %q\n", m.Index, m.Type, m.From.Nickname, m.From.ParticipantID, m.From.Type, m.Text)
		}
	}

	// The customer requests a chat.
	r := post("", url.Values{"firstName": {"First"}, "lastName": {"Last"}, "subject": {"Billing"}})
	show(r)
	session := url.Values{"alias": {r.Alias}, "userId": {r.UserID}, "secureKey": {r.SecureKey}}
	chatPath, next := "/"+r.ChatID, r.NextPosition

	// An agent joins from Go and answers.
	room, _ := chat.ParseID(r.ChatID)
	agent, _ := engine.CreateUser(ctx, chat.NewUser{DisplayName: "Agent Smith"})
	engine.Join(ctx, room, agent.ID, chat.JoinOptions{Nickname: "AgentNick", Role: chat.RoleAgent})
	engine.Send(ctx, room, agent.ID, chat.NewMessage{Text: "How can I help?"})

	// The client polls, copying nextPosition into transcriptPosition.
	session.Set("transcriptPosition", fmt.Sprint(next))
	r = post(chatPath+"/refresh", session)
	show(r)
	fmt.Println("nextPosition", r.NextPosition)
	// Output:
	// 1 ParticipantJoined First Last/1/Client ""
	// 2 ParticipantJoined AgentNick/2/Agent ""
	// 3 Message AgentNick/2/Agent "How can I help?"
	// nextPosition 4
}
