package chat

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/moonchat/moonchat/core/ws"
)

// This node's members' claims in the cluster's roster (cluster presence,
// remote.go): a name claimed at a join (a batch's joins together), a
// rename or a change of roles, released at a leave (a batch's leaves
// together), and what a member is told when a claim cannot be made.

// claimName gives m, asking for wanted, a name in r: giveName's, which is
// then claimed for the cluster when Config.Presence is set. A name another
// node's member holds (ErrNameTaken) is treated as used in the room: the
// next variant is tried, at most maxClaimTries names in all. Any other
// error refuses the name. roster.mu must be held (the room's Host readers
// wait for the claim: it happens only at joins, renames and role changes).
func (r *room) claimName(m *member, wanted string) (string, error) {
	return r.claimNameAfter(m, wanted, "")
}

// claimNameAfter is claimName when the cluster already refused the name
// refused ("": none), which counts as one of the tries.
func (r *room) claimNameAfter(m *member, wanted, refused string) (string, error) {
	if r.srv.presence == nil {
		return r.giveName(m, wanted), nil
	}
	ro := &r.roster
	defer func() { ro.refused = nil }()
	err := ErrNameTaken
	tries := maxClaimTries
	if refused != "" {
		ro.refused = make(map[string]bool)
		for _, k := range nameKeys(refused) {
			ro.refused[k] = true
		}
		tries--
	}
	for range tries {
		name := r.giveName(m, wanted)
		if err = r.srv.claim(r.name, m, name); err == nil {
			return name, nil
		}
		if !errors.Is(err, ErrNameTaken) {
			return "", err
		}
		if ro.refused == nil {
			ro.refused = make(map[string]bool)
		}
		for _, k := range nameKeys(name) {
			ro.refused[k] = true
		}
	}
	return "", err
}

// preclaim is a claim joinRun made for a joiner: the name it chose (and
// reserved in the room) and the claim's result.
type preclaim struct {
	name string
	err  error
}

// claimFor gives m, asking for wanted, its name in the room at its join
// (enter; roster.mu held, m.joinedAt set): claimName's, or pre's when
// joinRun claimed one for m (its reservation is dropped; a name the
// cluster refused counts as one try of claimName).
func (r *room) claimFor(m *member, wanted string, pre *preclaim) (string, error) {
	if pre == nil {
		m.joinedAt = nowUTC()
		return r.claimName(m, wanted)
	}
	r.roster.unreserve(pre.name, m)
	switch {
	case pre.err == nil:
		return pre.name, nil
	case errors.Is(pre.err, ErrNameTaken):
		return r.claimNameAfter(m, wanted, pre.name)
	}
	return "", pre.err
}

// joinParallel bounds the claims joinRun has under way at once.
const joinParallel = 32

// joinRun joins the members of a run of opJoin operations of one batch
// (cluster presence, more than one): each is admitted in turn (rules,
// bans, join hook), then each admitted one is given a name in turn,
// reserved in the room, and the names are claimed for the cluster
// together, up to joinParallel at once, before each member enters in
// turn. A burst of joins (the clients of a restarted node coming back)
// thus costs the room goroutine a few round trips to the cluster rather
// than one per member. The difference a script can see: the join hooks
// of a run all run before its first member is in the room. A name the
// cluster refused is claimed again at the member's turn (claimFor).
func (r *room) joinRun(ops []op) {
	s := r.srv
	type joiner struct {
		m      *member
		wanted string
		pre    preclaim
	}
	var js []joiner
	for i := range ops {
		if name, ok := r.admit(ops[i].m); ok {
			js = append(js, joiner{m: ops[i].m, wanted: name})
		}
	}
	if len(js) == 0 {
		return
	}
	r.releasePending()
	ro := &r.roster
	ro.mu.Lock()
	for i := range js {
		j := &js[i]
		j.m.joinedAt = nowUTC()
		j.pre.name = r.giveName(j.m, j.wanted)
		ro.reserve(j.pre.name, j.m)
	}
	ro.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, joinParallel)
	for i := range js {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			j := &js[i]
			j.pre.err = s.claim(r.name, j.m, j.pre.name)
		}()
	}
	wg.Wait()
	for i := range js {
		r.enter(js[i].m, js[i].wanted, &js[i].pre)
	}
}

// reserve holds name for m while joinRun claims it (roster.mu held):
// taken reports it used.
func (ro *roster) reserve(name string, m *member) {
	if ro.reserved == nil {
		ro.reserved = make(map[string]*member)
	}
	for _, k := range nameKeys(name) {
		ro.reserved[k] = m
	}
}

// unreserve drops m's reservation of name (roster.mu held).
func (ro *roster) unreserve(name string, m *member) {
	for _, k := range nameKeys(name) {
		if ro.reserved[k] == m {
			delete(ro.reserved, k)
		}
	}
	if len(ro.reserved) == 0 {
		ro.reserved = nil
	}
}

// claim records m as name in room for the cluster (Presence.Claim) with
// its roles now. An error that is not ErrNameTaken is logged and counted
// here; a claim that did not answer in time is ErrUnavailable.
func (s *Server) claim(room string, m *member, name string) error {
	ctx, cancel := context.WithTimeout(s.ctx, presenceTimeout)
	defer cancel()
	e := PresenceEntry{
		Node: s.presence.Node(), Session: m.id, Name: name, Keys: nameKeys(name),
		Account: m.account, Roles: m.currentRoles(), Joined: m.joinedAt,
	}
	err := s.presence.Claim(ctx, room, e)
	if err == nil || errors.Is(err, ErrNameTaken) {
		return err
	}
	if !errors.Is(err, ErrUnavailable) && ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.presenceFailed("claim", room, err)
	return err
}

// reclaim claims m's name again with its roles now (opRoles: Host.Grant
// or Host.Revoke changed them). A failure is logged and counted: the
// roles stand here, the cluster's roster has the old ones until the next
// claim.
func (r *room) reclaim(m *member) {
	if r.srv.presence == nil || !m.joined.Load() {
		return
	}
	ro := &r.roster
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if m.joined.Load() {
		_ = r.srv.claim(r.name, m, m.currentName())
	}
}

// releaseClaim takes m out of room's cluster roster at once (a join
// refused after its claim). A failure is logged and counted; the Presence
// releases it later (docs of Release).
func (s *Server) releaseClaim(room string, m *member) {
	if s.presence == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, presenceTimeout)
	defer cancel()
	if err := s.presence.Release(ctx, room, m.id); err != nil {
		s.presenceFailed("release", room, err)
	}
}

// releaseParallel bounds the releases a room has under way at once
// (releasePending).
const releaseParallel = 32

// releaseLater queues the release of m's claim (its leave) until the end
// of the room's batch (releasePending), so that a burst of leaves (a
// proxy dropping its clients, a shutdown) costs the room goroutine a few
// round trips to the cluster rather than one per member.
func (r *room) releaseLater(m *member) {
	if r.srv.presence != nil {
		r.unclaim = append(r.unclaim, m.id)
	}
}

// releasePending releases the claims releaseLater queued, up to
// releaseParallel at once, and waits for them (room goroutine: at the end
// of a batch, and before a join claims a name, so that a name left just
// before is free in the cluster too). Failures are counted, and logged in
// one line: the Presence releases those later (docs of Release).
func (r *room) releasePending() {
	ids := r.unclaim
	if len(ids) == 0 {
		return
	}
	s := r.srv
	var (
		mu     sync.Mutex
		failed int
		first  error
		wg     sync.WaitGroup
	)
	sem := make(chan struct{}, releaseParallel)
	for _, id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(s.ctx, presenceTimeout)
			defer cancel()
			if err := s.presence.Release(ctx, r.name, id); err != nil {
				mu.Lock()
				failed++
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.unclaim = ids[:0]
	if failed > 0 {
		s.metrics.presenceErrors.Add(uint64(failed))
		s.log.Warn("chat: cluster presence release failed", "room", r.name, "sessions", failed, "of", len(ids), "err", first)
	}
}

// refuseClaim turns m away when its name could not be claimed for the
// cluster: ErrUnavailable (the cluster cannot be reached) with the error
// code "unavailable" and close 1013, as a post is refused; anything else
// with "refused" (the name could not be reserved).
func (s *Server) refuseClaim(m *member, err error) {
	if !errors.Is(err, ErrUnavailable) {
		s.refuse(m, ws.StatusTryAgainLater, "join refused: your name could not be reserved in the cluster; try again later")
		return
	}
	text := "join refused: " + ErrUnavailable.Error()
	s.metrics.refused.Add(1)
	m.write(m.appendError(nil, codeUnavailable, text))
	_ = m.conn.Close(ws.StatusTryAgainLater, closeReason(text))
}

// renameRefused is Host.Rename's error when the new name could not be
// claimed for the cluster.
func renameRefused(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("rename refused: %w", ErrUnavailable)
	}
	return fmt.Errorf("rename refused: the name could not be reserved in the cluster: %w", err)
}
