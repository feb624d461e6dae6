package auth_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/moonchat/moonchat/auth"
)

// The login flow in small: the server mints a token for an identity its
// login hook established, the page connects with it in the URL, and the
// handshake verifies it.
func Example() {
	secret := []byte("a secret of at least thirty-two bytes")
	minter, err := auth.NewMinter(auth.MinterConfig{Secret: secret, Issuer: "moonchat"})
	if err != nil {
		panic(err)
	}
	verifier, err := auth.New(auth.Config{Secret: secret, Issuer: "moonchat", RequireExp: true})
	if err != nil {
		panic(err)
	}
	token, _, err := minter.Mint(auth.Identity{ID: "acct:7", Name: "alice", Roles: []string{"user"}})
	if err != nil {
		panic(err)
	}

	r := httptest.NewRequest("GET", "/ws?room=lobby&token="+token, nil)
	found, err := auth.TokenFromRequest(r)
	if err != nil {
		panic(err)
	}
	id, err := verifier.Verify(found)
	fmt.Println(id.ID, id.Name, id.Roles, err)

	_, err = verifier.Verify(token[:len(token)-2] + "xx")
	fmt.Println(err)
	// Output:
	// acct:7 alice [user] <nil>
	// auth: token signature does not verify
}
