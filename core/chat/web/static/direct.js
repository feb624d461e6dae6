// moonchat chat page: direct messages (issue 14; docs/protocol.md, "Direct
// messages"). The conversations of this user are listed beside the room,
// each with a count of the messages that came while it was not open; one
// conversation at a time is shown in place of the room, and the input then
// sends {"type":"direct"}. app.js owns the connection and the room and
// hands this module what it needs (createDirect's page argument).
//
// Safety rule, as in app.js: user-supplied data (names, texts) only ever
// reaches the DOM through textContent / Text nodes; never parsed as HTML.

const PAGE = 50; // messages asked for per scroll-up page of a conversation
// Unread messages of a conversation that was not open are counted from a
// history page after the last one read; past this many the badge says
// "99+" rather than paging on through a long absence.
const COUNT_PAGE = 100;
const BADGE_MAX = 99;
// An error event within this long after a direct message was sent from the
// open conversation is that message's (errors carry no request id).
const ERROR_WINDOW_MS = 10000;
// localStorage key prefix of an account's read state: one object per
// account, peer account id -> the last message id read in that
// conversation. Guests' conversations live only as long as their session
// (their ids start over), so their read state is not kept.
const KEY_READ = 'moonchat.dmread.';

// Errors that are always about a direct message.
const DIRECT_ERRORS = new Set(['no_such_user', 'not_delivered']);
// Errors that are about one when one was just sent from the open
// conversation.
const SEND_ERRORS = new Set(['muted', 'dropped', 'hook_failed', 'bad_request', 'flood', 'too_long']);

// createDirect wires the direct-message part of the page. page gives:
// S (the page's state: online, myName, ownNames), sendJSON(obj) → bool,
// me() → {name, id} (id: the account id, '' for a guest), messageEl(m),
// fixDays(first, last), regroup(li), hue(name), load/store (storage
// helpers), composerChanged() (the input's state depends on the view),
// roomLabel() ("#lobby"), unreadArrived() (an unread direct message came:
// the tab's title counts it while the tab is hidden).
export function createDirect(page) {
  const $ = (id) => document.getElementById(id);
  const el = {
    app: $('app'),
    roomScroller: $('scroller'),
    scroller: $('dm-scroller'),
    older: $('dm-older'),
    messages: $('dm-messages'),
    empty: $('dm-none'),
    head: $('dm-head'),
    back: $('dm-back'),
    backRoom: $('dm-back-room'),
    peer: $('dm-peer'),
    error: $('dm-error'),
    list: $('conversations'),
    hint: $('conversations-hint'),
    text: $('text'),
  };

  // Conversations by key: 'a:' + the peer's account id when it has one
  // (stable across renames), else 'n:' + its name. Each is
  // {key, name, withId, lastId, activity (ms, for the order), read (the
  // last id read), unread (Set of ids of the peer's messages not read),
  // overflow (more unread than counted), counted (highest id counted),
  // counting (a page to count from was asked for and has not come)}.
  const convs = new Map();
  const D = {
    me: '',          // whose conversations these are ('a:ID' or 'g:NAME')
    open: '',        // key of the conversation shown, '' = the room
    shown: new Map(), // id -> <li> of the open conversation
    oldestId: 0,
    more: false,     // the server has older messages of the open one
    loading: false,  // a page of older messages was asked for
    loaded: false,   // the open conversation's first page came
    sentAt: 0,       // when a direct message was last sent from here (ms)
    // Where the room was scrolled to when a conversation hid it: -1 at
    // the bottom (it follows new messages when shown again).
    roomScroll: -1,
  };

  // ---- read state ------------------------------------------------------------

  function readKey() {
    const me = page.me();
    return me.id ? KEY_READ + me.id : '';
  }

  function storedRead() {
    const k = readKey();
    if (!k) return {};
    try {
      const v = JSON.parse(page.load('local', k) || '{}');
      return v && typeof v === 'object' ? v : {};
    } catch {
      return {};
    }
  }

  // saveRead keeps conv's read id for the next visit (accounts only, and
  // only a conversation with another account: the only kind that is
  // stored by the server, with ids that never start over).
  function saveRead(conv) {
    const k = readKey();
    if (!k || !conv.withId) return;
    const all = storedRead();
    if ((Number(all[conv.withId]) || 0) >= conv.read) return;
    all[conv.withId] = conv.read;
    page.store('local', k, JSON.stringify(all));
  }

  // Another tab of this browser read a conversation: so has this one.
  window.addEventListener('storage', (e) => {
    if (!e.key || e.key !== readKey()) return;
    const all = storedRead();
    let changed = false;
    for (const conv of convs.values()) {
      const r = conv.withId ? Number(all[conv.withId]) || 0 : 0;
      if (r > conv.read) {
        setRead(conv, r);
        changed = true;
      }
    }
    if (changed) renderList();
  });

  function setRead(conv, id) {
    if (id <= conv.read) return;
    conv.read = id;
    for (const u of conv.unread) if (u <= id) conv.unread.delete(u);
    if (id >= conv.lastId) conv.overflow = false;
  }

  // ---- conversations -----------------------------------------------------------

  function keyOf(name, withId) {
    return withId ? `a:${withId}` : `n:${name}`;
  }

  // find returns the conversation with name / withId, or undefined. An
  // event without with_id (a guest, or an older server) matches by name.
  function find(name, withId) {
    if (withId) {
      const c = convs.get(keyOf(name, withId));
      if (c) return c;
    }
    const byName = convs.get(keyOf(name, ''));
    if (byName) return byName;
    for (const c of convs.values()) if (c.name === name) return c;
    return undefined;
  }

  // upsert returns the conversation with name / withId, made if new; a
  // peer account's new name replaces the old one.
  function upsert(name, withId) {
    let conv = find(name, withId);
    if (conv && withId && !conv.withId) {
      // Known by name until now (a member clicked before its account was
      // known): key it by the account from here on.
      convs.delete(conv.key);
      conv.withId = withId;
      conv.key = keyOf(name, withId);
      convs.set(conv.key, conv);
      if (D.open === keyOf(name, '')) D.open = conv.key;
    }
    if (!conv) {
      conv = {
        key: keyOf(name, withId), name, withId, lastId: 0, activity: 0,
        read: 0, unread: new Set(), overflow: false, counted: 0, counting: false,
      };
      if (withId) conv.read = Number(storedRead()[withId]) || 0;
      convs.set(conv.key, conv);
    }
    if (name) conv.name = name;
    return conv;
  }

  // incoming reports whether m (a direct event or a history entry) was
  // sent to this user rather than by it.
  function incoming(m) {
    const me = page.me();
    if (me.id && typeof m.user_id === 'string' && m.user_id) return m.user_id !== me.id;
    return !page.S.ownNames.has(String(m.from ?? ''));
  }

  // note records message m of conv: its id, and whether it is unread.
  function note(conv, m, when) {
    const id = Number(m.id) || 0;
    if (id <= 0) return;
    if (id > conv.lastId) conv.lastId = id;
    if (id > conv.counted) conv.counted = id;
    if (when > conv.activity) conv.activity = when;
    if (D.open === conv.key && !document.hidden) {
      // Shown as it comes: read, whoever wrote it (in a hidden tab, once
      // the tab is looked at again).
      setRead(conv, id);
    } else if (!incoming(m)) {
      // This user wrote it (from another tab, or /msg in the room): it
      // has read what came before.
      setRead(conv, id);
    } else if (id > conv.read) {
      conv.unread.add(id);
    }
  }

  function unreadCount(conv) {
    return conv.unread.size;
  }

  // renderList shows the conversations, the most recent first, each with
  // its unread count.
  function renderList() {
    const list = [...convs.values()].sort((a, b) => b.activity - a.activity);
    const items = list.map((conv) => {
      const li = document.createElement('li');
      li.dataset.with = conv.name;
      if (conv.withId) li.dataset.account = conv.withId;
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'conv';
      if (conv.key === D.open) b.setAttribute('aria-current', 'true');
      const dot = document.createElement('span');
      dot.className = 'dot';
      dot.style.setProperty('--hue', String(page.hue(conv.name)));
      dot.setAttribute('aria-hidden', 'true');
      const name = document.createElement('bdi');
      name.className = 'name';
      name.textContent = conv.name;
      const badge = document.createElement('span');
      badge.className = 'unread';
      const n = unreadCount(conv);
      badge.hidden = n === 0;
      badge.textContent = n > BADGE_MAX || (n > 0 && conv.overflow) ? `${Math.min(n, BADGE_MAX)}+` : String(n);
      badge.title = n === 1 ? '1 unread message' : `${badge.textContent} unread messages`;
      b.append(dot, name, badge);
      b.setAttribute('aria-label', n > 0 ? `${conv.name}, ${badge.title}` : conv.name);
      b.addEventListener('click', () => openConv(conv));
      li.append(b);
      return li;
    });
    el.list.replaceChildren(...items);
    el.hint.hidden = items.length > 0;
    // Busy while unread messages are still being counted: the counts may
    // yet go up.
    el.list.setAttribute('aria-busy', String(list.some((c) => c.counting)));
  }

  // onConversations: the server's list of this user's conversations
  // (after every welcome). Unread messages since the last visit are
  // counted from a history page after the last id read.
  function onConversations(ev) {
    const list = Array.isArray(ev.conversations) ? ev.conversations : [];
    const seen = new Set();
    for (const c of list) {
      if (!c || typeof c.with !== 'string' || !c.with) continue;
      const conv = upsert(c.with, typeof c.with_id === 'string' ? c.with_id : '');
      seen.add(conv.key);
      const last = Number(c.last_id) || 0;
      if (last > conv.lastId) conv.lastId = last;
      const ts = c.last_ts ? Date.parse(c.last_ts) : NaN;
      if (Number.isFinite(ts) && ts > conv.activity) conv.activity = ts;
      if (conv.key === D.open) {
        catchUp(conv);
      } else if (last > Math.max(conv.read, conv.counted)) {
        conv.counting = page.sendJSON({ type: 'history', with: conv.name, after: Math.max(conv.read, conv.counted), limit: COUNT_PAGE });
      }
    }
    // A conversation the server no longer has (a guest's, gone with its
    // session) goes, unless it is open or was just started here.
    for (const [key, conv] of convs) {
      if (!seen.has(key) && key !== D.open && conv.lastId > 0) convs.delete(key);
    }
    renderList();
  }

  // onDirect: a direct message, to or from this user, live.
  function onDirect(ev) {
    const name = String(ev.with ?? '');
    if (!name) return;
    const conv = upsert(name, typeof ev.with_id === 'string' ? ev.with_id : '');
    note(conv, ev, Date.now());
    if (D.open === conv.key) place([ev]);
    if (conv.unread.has(Number(ev.id))) page.unreadArrived();
    else saveRead(conv);
    renderList();
  }

  // onHistory: a page of a conversation (the "history" event with "with").
  // The open conversation shows it; any other counts its unread messages.
  function onHistory(ev) {
    const name = String(ev.with ?? '');
    const conv = find(name, typeof ev.with_id === 'string' ? ev.with_id : '');
    if (!conv) return;
    const msgs = (Array.isArray(ev.messages) ? ev.messages : []).filter((m) => m && typeof m === 'object');
    for (const m of msgs) {
      note(conv, m, m.ts ? Date.parse(m.ts) || 0 : 0);
    }
    const open = D.open === conv.key;
    if (ev.reason === 'after') conv.counting = false;
    if (open) {
      if (ev.reason === 'before') {
        D.more = Boolean(ev.more);
        D.loading = false;
        D.loaded = true;
      }
      place(msgs);
      if (!document.hidden) markRead(conv);
      updateOlder();
    }
    if (ev.reason === 'after' && ev.more && msgs.length > 0) {
      const last = Number(msgs[msgs.length - 1].id) || 0;
      if (open) {
        page.sendJSON({ type: 'history', with: conv.name, after: last, limit: COUNT_PAGE });
      } else {
        // Enough counted: the badge says "99+".
        conv.overflow = true;
      }
    }
    renderList();
    if (open) fillIfShort();
  }

  // ---- the open conversation ----------------------------------------------------

  function openConv(conv) {
    if (D.open === conv.key) {
      el.text.focus();
      return;
    }
    if (!D.open) {
      const r = el.roomScroller;
      D.roomScroll = r.scrollHeight - r.scrollTop - r.clientHeight < 80 ? -1 : r.scrollTop;
    }
    D.open = conv.key;
    D.shown.clear();
    D.oldestId = 0;
    D.more = false;
    D.loading = false;
    D.loaded = false;
    el.messages.replaceChildren();
    hideError();
    el.peer.textContent = conv.name;
    el.backRoom.textContent = page.roomLabel();
    el.app.dataset.pane = 'direct';
    el.head.hidden = false;
    el.scroller.hidden = false;
    el.roomScroller.hidden = true;
    el.text.placeholder = `Message ${conv.name}…`;
    el.empty.hidden = true;
    // Read as soon as it is open: what is on its way is shown as it comes.
    markRead(conv);
    requestFirst(conv);
    updateOlder();
    renderList();
    page.composerChanged();
    el.text.focus();
  }

  function requestFirst(conv) {
    if (page.sendJSON({ type: 'history', with: conv.name, limit: PAGE })) D.loading = true;
  }

  // catchUp asks for what the open conversation missed while the page was
  // away (after a reconnect), or for its first page if none came.
  function catchUp(conv) {
    if (!D.loaded) {
      requestFirst(conv);
      return;
    }
    let newest = 0;
    for (const id of D.shown.keys()) if (id > newest) newest = id;
    if (conv.lastId > newest) page.sendJSON({ type: 'history', with: conv.name, after: newest, limit: COUNT_PAGE });
  }

  // closeConv shows the room again.
  function closeConv() {
    if (!D.open) return;
    D.open = '';
    D.shown.clear();
    el.messages.replaceChildren();
    el.app.dataset.pane = 'room';
    el.head.hidden = true;
    el.scroller.hidden = true;
    el.roomScroller.hidden = false;
    el.text.placeholder = 'Write a message… (/help for commands)';
    hideError();
    renderList();
    page.composerChanged();
    const r = el.roomScroller;
    r.scrollTop = D.roomScroll < 0 ? r.scrollHeight : D.roomScroll;
  }

  function markRead(conv) {
    let newest = conv.lastId;
    for (const id of D.shown.keys()) if (id > newest) newest = id;
    setRead(conv, newest);
    conv.unread.clear();
    conv.overflow = false;
    saveRead(conv);
  }

  function nearBottom() {
    const s = el.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  // place shows messages of the open conversation in id order, whatever
  // order the pages and live events come in, keeping what the reader
  // looks at in place (or following the bottom when the reader is there).
  function place(list) {
    const conv = convs.get(D.open);
    if (!conv) return;
    const stick = nearBottom();
    let anchor = null;
    for (const li of el.messages.children) {
      if (li.classList.contains('msg')) {
        anchor = li;
        break;
      }
    }
    const before = anchor ? anchor.getBoundingClientRect().top : 0;
    let atEnd = false;
    const added = [];
    const sorted = [...list].sort((a, b) => (Number(a.id) || 0) - (Number(b.id) || 0));
    for (const m of sorted) {
      const id = Number(m.id) || 0;
      if (id <= 0 || D.shown.has(id)) continue;
      const li = page.messageEl({
        id, user: String(m.from ?? ''), text: m.text, ts: m.ts, user_id: m.user_id, roles: m.roles,
      });
      li.classList.toggle('own', !incoming(m));
      li.classList.add('direct');
      // After the last shown message with a smaller id.
      let after = null;
      for (let p = el.messages.lastElementChild; p; p = p.previousElementSibling) {
        if (p.classList.contains('msg') && Number(p.dataset.id) < id) {
          after = p;
          break;
        }
      }
      if (after) after.after(li); else el.messages.prepend(li);
      if (!li.nextElementSibling) atEnd = true;
      D.shown.set(id, li);
      if (D.oldestId === 0 || id < D.oldestId) D.oldestId = id;
      added.push(li);
    }
    for (const li of added) {
      page.fixDays(li, li);
      page.regroup(li);
      let next = li.nextElementSibling;
      while (next && !next.classList.contains('msg')) next = next.nextElementSibling;
      page.regroup(next);
    }
    el.empty.hidden = !(D.loaded && D.shown.size === 0);
    if (added.length === 0) return;
    if (atEnd && (stick || !anchor)) {
      el.scroller.scrollTop = el.scroller.scrollHeight;
    } else if (anchor) {
      el.scroller.scrollTop += anchor.getBoundingClientRect().top - before;
    }
  }

  function updateOlder() {
    el.older.hidden = !(D.open && D.more);
    el.older.disabled = D.loading || !page.S.online;
    el.older.textContent = D.loading ? 'Loading older messages…' : 'Load older messages';
  }

  function requestOlder() {
    const conv = convs.get(D.open);
    if (!conv || !D.more || D.loading || D.oldestId <= 0) return;
    if (page.sendJSON({ type: 'history', with: conv.name, before: D.oldestId, limit: PAGE })) {
      D.loading = true;
      updateOlder();
    }
  }

  function fillIfShort() {
    const s = el.scroller;
    if (D.more && s.scrollHeight <= s.clientHeight + 4) requestOlder();
  }

  // ---- sending and errors -----------------------------------------------------------

  // send sends text to the open conversation's peer; false when the page
  // is not connected (the text stays in the box).
  function send(text) {
    const conv = convs.get(D.open);
    if (!conv) return false;
    if (!page.sendJSON({ type: 'direct', to: conv.name, text })) return false;
    D.sentAt = Date.now();
    hideError();
    return true;
  }

  function showError(text, code) {
    el.error.dataset.code = code || '';
    el.error.textContent = text;
    el.error.hidden = false;
  }

  function hideError() {
    el.error.hidden = true;
    el.error.textContent = '';
  }

  // onError takes an error event that is about a direct message: shown
  // under the open conversation (near the input) and true; false when it
  // is the room's.
  function onError(ev) {
    const code = String(ev.code ?? '');
    const text = String(ev.text ?? code ?? 'error');
    if (code === 'no_history' && [...convs.values()].some((c) => c.counting)) {
      // A conversation listed but no longer stored: nothing to count.
      for (const c of convs.values()) c.counting = false;
      renderList();
      if (!(D.open && D.loading)) return true;
    }
    if (code === 'no_history' && D.open && D.loading) {
      D.loading = false;
      D.loaded = true;
      D.more = false;
      el.empty.hidden = D.shown.size > 0;
      updateOlder();
      return true;
    }
    const recent = D.open && Date.now() - D.sentAt < ERROR_WINDOW_MS;
    if (D.open && (DIRECT_ERRORS.has(code) || (recent && SEND_ERRORS.has(code)))) {
      showError(text, code);
      return true;
    }
    return false;
  }

  // ---- connection --------------------------------------------------------------------

  // onWelcome asks for the conversations (after every welcome: a reconnect
  // may have missed messages). Another user in this tab (a log-out, a
  // different token) starts from an empty list.
  function onWelcome() {
    const me = page.me();
    const who = me.id ? `a:${me.id}` : `g:${me.name}`;
    if (who !== D.me) {
      if (D.me) reset();
      D.me = who;
    }
    page.sendJSON({ type: 'conversations' });
    updateOlder();
  }

  // reset forgets every conversation (another user).
  function reset() {
    closeConv();
    convs.clear();
    renderList();
  }

  el.back.addEventListener('click', closeConv);
  el.older.addEventListener('click', requestOlder);
  el.scroller.addEventListener('scroll', () => {
    if (el.scroller.scrollTop < 48) requestOlder();
  }, { passive: true });
  // What came into the open conversation while the tab was hidden is read
  // when the tab is shown.
  document.addEventListener('visibilitychange', () => {
    const conv = convs.get(D.open);
    if (document.hidden || !conv || conv.unread.size === 0) return;
    markRead(conv);
    renderList();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && D.open && !e.isComposing) closeConv();
  });

  renderList();

  return {
    isOpen: () => D.open !== '',
    // openWith starts (or opens) the conversation with a member of the
    // room; withId is its account id ('' for a guest).
    openWith: (name, withId) => {
      const conv = upsert(name, withId);
      if (conv.activity === 0) conv.activity = Date.now();
      openConv(conv);
    },
    close: closeConv,
    send,
    // tell shows text under the open conversation, by the input.
    tell: (text) => showError(text, 'local'),
    onWelcome,
    onConversations,
    onDirect,
    onHistory,
    onError,
    onClosed: () => {
      D.loading = false;
      for (const c of convs.values()) c.counting = false;
      renderList();
      updateOlder();
    },
  };
}
