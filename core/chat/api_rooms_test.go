package chat_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/moonchat/moonchat/core/chat"
	"github.com/moonchat/moonchat/core/chat/chattest"
)

// roomsGet calls GET /api/rooms on the server's handler. It goes to
// serveRooms directly, so that it tests the handler whatever the router
// in server.go does.
func roomsGet(srv *chat.Server, method string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	srv.ServeRooms(rec, httptest.NewRequest(method, "/api/rooms", nil))
	return rec
}

// apiRooms is the body of GET /api/rooms.
type apiRooms struct {
	Rooms []struct {
		Room    string `json:"room"`
		Count   int    `json:"count"`
		FirstID uint64 `json:"first_id"`
		LastID  uint64 `json:"last_id"`
		Members int    `json:"members"`
	} `json:"rooms"`
	Error string `json:"error"`
}

// GET /api/rooms lists stored rooms merged with live ones, sorted, with
// the stored counts and ids and the live member counts.
func TestAPIRooms(t *testing.T) {
	hist := chattest.NewListingHistory()
	add(hist.History, "alpha", "u", "a1", "a2", "a3")
	add(hist.History, "beta", "u", "b1", "b2", "b3")
	if ok, _ := hist.Redact("beta", 3); !ok {
		t.Fatal("setup: redact failed")
	}
	hist.PruneTo("beta", 1)
	ts := chattest.Start(t, chat.Config{}, nil, hist)

	rec := roomsGet(ts.Chat, http.MethodGet)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if got, want := rec.Body.String(), `{"rooms":[`+
		`{"room":"alpha","count":3,"first_id":1,"last_id":3,"members":0},`+
		`{"room":"beta","count":1,"first_id":2,"last_id":3,"members":0}]}`+"\n"; got != want {
		t.Fatalf("no members:\n got %s\nwant %s", got, want)
	}

	// Two members in beta (stored), one in gamma (nothing stored).
	b1 := ts.Dial(t, "/chat/beta?name=b1", "")
	b1.SkipTo(func(s string) bool { return s == "* b1 joined" })
	b2 := ts.Dial(t, "/chat/beta?name=b2", "")
	b2.SkipTo(func(s string) bool { return s == "* b2 joined" })
	g := ts.Dial(t, "/chat/gamma?name=g", "")
	g.SkipTo(func(s string) bool { return s == "* g joined" })

	var p apiRooms
	chattest.Eventually(t, "members counted", func() bool {
		rec := roomsGet(ts.Chat, http.MethodGet)
		p = apiRooms{}
		return rec.Code == 200 && json.Unmarshal(rec.Body.Bytes(), &p) == nil &&
			len(p.Rooms) == 3 && p.Rooms[1].Members == 2 && p.Rooms[2].Members == 1
	})
	type row struct {
		room        string
		count       int
		first, last uint64
		members     int
	}
	var got []row
	for _, r := range p.Rooms {
		got = append(got, row{r.Room, r.Count, r.FirstID, r.LastID, r.Members})
	}
	want := []row{{"alpha", 3, 1, 3, 0}, {"beta", 1, 2, 3, 2}, {"gamma", 0, 0, 0, 1}}
	if !slices.Equal(got, want) {
		t.Errorf("with members: %+v, want %+v", got, want)
	}

	// HEAD is allowed (like the other endpoints); anything else is not.
	if rec := roomsGet(ts.Chat, http.MethodHead); rec.Code != 200 {
		t.Errorf("HEAD: %d", rec.Code)
	}
	rec = roomsGet(ts.Chat, http.MethodPost)
	if rec.Code != 405 || rec.Header().Get("Allow") != "GET, HEAD" || !strings.Contains(rec.Body.String(), `"error":`) {
		t.Errorf("POST: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}

// Without a room index, without a store, or when the store fails, the
// endpoint answers with a status and a JSON error saying why.
func TestAPIRoomsErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hist   chat.History
		status int
		text   string
	}{
		{"no store", nil, 404, "no history: the server runs without a store"},
		{"history without RoomLister", chattest.NewHistory(), 503, "this server's history store cannot list rooms"},
		{"store failure", &chattest.ListingHistory{History: chattest.NewHistory(), Fail: true}, 500, "listing rooms failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := chattest.Start(t, chat.Config{}, nil, tc.hist)
			rec := roomsGet(ts.Chat, http.MethodGet)
			var p apiRooms
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("%d %q: %v", rec.Code, rec.Body, err)
			}
			if rec.Code != tc.status || p.Error != tc.text || p.Rooms != nil {
				t.Errorf("%d %s, want %d %q", rec.Code, rec.Body, tc.status, tc.text)
			}
		})
	}
}
