package auth_test

import (
	"net/http/httptest"
	"testing"

	"github.com/moonchat/moonchat/auth"
)

func TestTokenFromRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		url     string
		headers []string // Authorization values
		want    string
		err     error
	}{
		{"query", "/ws?room=a&token=abc.def.ghi", nil, "abc.def.ghi", nil},
		{"bearer", "/ws", []string{"Bearer abc.def.ghi"}, "abc.def.ghi", nil},
		{"bearer scheme is case-insensitive", "/ws", []string{"bearer   abc.def.ghi "}, "abc.def.ghi", nil},
		{"none", "/ws?room=a", nil, "", auth.ErrNoToken},
		{"basic auth is not a token", "/ws", []string{"Basic dXNlcjpwYXNz"}, "", auth.ErrNoToken},
		{"basic auth beside a query token", "/ws?token=t1", []string{"Basic dXNlcjpwYXNz"}, "t1", nil},
		{"query and header", "/ws?token=t1", []string{"Bearer t2"}, "", auth.ErrManyTokens},
		{"same token twice", "/ws?token=t1", []string{"Bearer t1"}, "", auth.ErrManyTokens},
		{"two query tokens", "/ws?token=t1&token=t2", nil, "", auth.ErrManyTokens},
		{"two bearer headers", "/ws", []string{"Bearer t1", "Bearer t2"}, "", auth.ErrManyTokens},
		{"empty query token", "/ws?token=", nil, "", auth.ErrMalformed},
		{"empty bearer", "/ws", []string{"Bearer "}, "", auth.ErrMalformed},
		// The guest fast path skips parsing a query that cannot name
		// "token"; an escaped spelling of it is still found.
		{"escaped parameter name", "/ws?%74oken=abc", nil, "abc", nil},
		{"escaped other parameter", "/ws?name=%C3%A9&token=abc", nil, "abc", nil},
		{"escaped name, no token", "/ws?name=%C3%A9", nil, "", auth.ErrNoToken},
		{"token in a value is not a token", "/ws?name=token", nil, "", auth.ErrNoToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.url, nil)
			for _, h := range tc.headers {
				r.Header.Add("Authorization", h)
			}
			got, err := auth.TokenFromRequest(r)
			if got != tc.want || err != tc.err {
				t.Fatalf("TokenFromRequest = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}
