// moonchat chat page: speaks the JSON subprotocol "moonchat.v1" (see
// docs/protocol.md). Plain modern JS, no framework, no build step.
//
// Safety rule for this file: user-supplied data (names, texts, reasons) only
// ever reaches the DOM through textContent / Text nodes / validated hrefs;
// it is never parsed as HTML.
//
// The page is an ES module (index.html loads it with type="module") so that
// concerns live in their own files: direct.js holds direct messages.
import { createDirect } from './direct.js';

(() => {
  'use strict';

  const PROTOCOL = 'moonchat.v1';
  const HISTORY_PAGE = 50; // messages asked for per scroll-up page
  const CATCHUP_PAGE = 500; // messages asked for per resume page (the server caps it)
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const NAME_MAX = 24; // [chat] max_name_length default; the server has the last word
  const ROOM_RE = /^[A-Za-z0-9._-]{1,32}$/;
  // Mirrors the server's rule: no control characters, no white space, no ':',
  // not starting with '*'.
  const NAME_BAD_RE = /[\p{Cc}\s:]/u;
  const URL_RE = /\bhttps?:\/\/[^\s<>"']+/g;
  const GROUP_MS = 5 * 60 * 1000; // one sender's messages closer than this share a header
  const KEY_NAME = 'moonchat.name';
  const KEY_ROOM = 'moonchat.room';
  const KEY_JOINED = 'moonchat.joined'; // sessionStorage: this tab was in a room
  // sessionStorage: this tab's credentials, {token, expires, login} (see
  // setAuth). Per tab and gone with it: a token is not left behind in
  // localStorage for the next user of the browser.
  const KEY_AUTH = 'moonchat.auth';
  const TOKEN_MAX = 8192; // bytes; the server refuses longer tokens (auth.MaxTokenLen)
  // A token from a login is renewed this long before it expires: a fifth
  // of what is left, between RENEW_LEAD_MIN_S and RENEW_LEAD_MAX_S.
  const RENEW_LEAD_MIN_S = 3;
  const RENEW_LEAD_MAX_S = 300;
  const RENEW_RETRY_MS = 15000; // after a failed renewal that may work later
  // Roles every member has one of: not worth a badge.
  const PLAIN_ROLES = new Set(['user', 'guest']);
  const ROLE_BADGES_MAX = 3; // badges shown per name (all of them in its tooltip)
  // Roles whose badges stand out (and come first): "admin" moderates every
  // room; "moderator"/"mod" are the names room rules give their moderate
  // lists by convention (the page cannot see the rules).
  const MOD_ROLES = new Set(['admin', 'moderator', 'mod']);
  // Typing indicators: sent at most this often while the user types (the
  // server relays at most one per 2 s and drops the rest; the margin keeps
  // network jitter from making one arrive early), shown this long after
  // the last.
  const TYPING_SEND_MS = 2100;
  const TYPING_SHOW_MS = 4000;
  // The server's [chat] default_room, which it writes into a <meta> when it
  // serves the page (the content security policy forbids inline script).
  // "lobby" only when the page was not served by moonchat.
  const DEFAULT_ROOM = (() => {
    const v = document.querySelector('meta[name="moonchat-default-room"]')?.content ?? '';
    return ROOM_RE.test(v) ? v : 'lobby';
  })();

  const $ = (id) => document.getElementById(id);
  const el = {
    app: $('app'),
    status: $('status'),
    announce: $('announce'),
    roomTitle: $('room-title'),
    topic: $('topic'),
    topicText: $('topic-text'),
    typing: $('typing'),
    composerNote: $('composer-note'),
    me: $('me'),
    meName: $('me-name'),
    meMarks: $('me-marks'),
    leave: $('leave'),
    logout: $('logout'),
    joinView: $('join-view'),
    joinForm: $('join-form'),
    signedIn: $('signed-in'),
    signedInText: $('signed-in-text'),
    signedInMarks: $('signed-in-marks'),
    nameField: $('name-field'),
    joinName: $('join-name'),
    joinRoom: $('join-room'),
    joinError: $('join-error'),
    joinInfo: $('join-info'),
    showAuth: $('show-auth'),
    auth: $('auth'),
    loginForm: $('login-form'),
    loginName: $('login-name'),
    loginPassword: $('login-password'),
    loginError: $('login-error'),
    loginButton: $('login-button'),
    tokenForm: $('token-form'),
    tokenInput: $('token-input'),
    tokenError: $('token-error'),
    chatView: $('chat-view'),
    scroller: $('scroller'),
    older: $('older'),
    messages: $('messages'),
    composer: $('composer'),
    text: $('text'),
    send: $('send'),
    presence: $('presence'),
    peopleCount: $('people-count'),
  };

  // All mutable page state lives here, in one place.
  const S = {
    ws: null,          // the current WebSocket, or null
    joined: false,     // the user wants to be in S.room (reconnect while true)
    online: false,     // welcome received on the current socket
    room: '',
    wantName: '',      // the name we ask for when (re)connecting
    people: [],        // presence list, join order (full list + deltas)
    myName: '',        // the name the server gave us
    ownNames: new Set(), // every name this tab had, to mark own messages
    byId: new Map(),   // message id -> <li>, for de-duplication and redaction
    lastId: 0,         // newest message id seen (resume point)
    oldestId: 0,       // oldest message id shown (scroll-up point)
    moreOlder: false,  // the server said older messages exist
    loadingOlder: false,
    // Resume catch-up: while a since/after batch says "more", the next page
    // is asked for and live chat events wait in held, so that what is shown
    // stays in id order and lastId (the resume point) never skips past
    // messages not fetched yet.
    catchingUp: false,
    held: [],
    lastError: '',     // text of the last error event, used as a close reason
    attempt: 0,        // reconnect attempts since the last welcome
    retryTimer: 0,
    countdownTimer: 0,
    retryAt: 0,
    unread: 0,
    nameNote: '',      // "alice is taken; …", shown once the join's replay is in
    today: '',         // the day the day separators were labelled on
    // Identity. auth is this tab's credentials ({token, expires, login}:
    // expires in Unix seconds, 0 unknown; login is true for a token this
    // server minted at a login, which it can renew) or null for a guest.
    auth: null,
    session: null,     // the server's last GET /api/session answer for S.room
    // member name -> {id, roles} for the members with an account or
    // granted roles, from presence "accounts"/"guests" and "roles" events
    accounts: new Map(),
    connGen: 0,        // bumped by every connect and leave: a stale session check is ignored
    wsToken: '',       // the token the server holds for the current socket
    sentToken: '',     // a renewed token sent over the socket, not yet confirmed
    renewTimer: 0,
    loginAvailable: false, // GET /api/login said a login script is loaded
    // Moderation as this member meets it: mutedUntil is when the mute the
    // server reported ends (ms; Infinity: no expiry; 0: not muted),
    // slowUntil when slow mode lets the next message through (ms).
    mutedUntil: 0,
    mutedText: '',
    slowUntil: 0,
    noteTimer: 0,
    typingSent: 0,     // when this page last sent {"type":"typing"} (ms)
    typingTimer: 0,    // a send held back by TYPING_SEND_MS
    typers: new Map(), // name -> timer that hides "NAME is typing…"
  };

  // Direct messages (direct.js): the conversations beside the room, one of
  // them shown in the room's place when open.
  const dm = createDirect({
    S,
    sendJSON,
    me: () => {
      const a = myAccount();
      return { name: S.myName, id: a && a.id ? a.id : '' };
    },
    messageEl,
    fixDays,
    regroup,
    hue,
    load,
    store,
    roomLabel: () => (S.room ? `#${S.room}` : 'the room'),
    unreadArrived: () => {
      if (!document.hidden) return;
      S.unread++;
      updateTitle();
    },
    composerChanged: () => {
      updateComposer();
      fillIfShort();
    },
  });

  // ---- small helpers -------------------------------------------------------

  function store(kind, key, value) {
    try {
      const s = kind === 'session' ? sessionStorage : localStorage;
      if (value === null) s.removeItem(key); else s.setItem(key, value);
    } catch { /* storage disabled: defaults just are not remembered */ }
  }

  function load(kind, key) {
    try {
      return (kind === 'session' ? sessionStorage : localStorage).getItem(key) || '';
    } catch {
      return '';
    }
  }

  function pad2(n) {
    return String(n).padStart(2, '0');
  }

  function parseTime(ts) {
    const d = ts ? new Date(ts) : new Date();
    return Number.isNaN(d.getTime()) ? new Date() : d;
  }

  // timeEl shows HH:MM; the full date and time are in its tooltip (the day
  // is also given by the separator above the day's first item).
  function timeEl(d) {
    const t = document.createElement('time');
    t.dateTime = d.toISOString();
    t.textContent = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    t.title = d.toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'medium' });
    return t;
  }

  // dayKey names d's local calendar day ("2026-12-02").
  function dayKey(d) {
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  }

  // dayLabel says which day key is, from where the reader is today.
  function dayLabel(key) {
    const [y, m, d] = key.split('-').map(Number);
    const day = new Date(y, m - 1, d);
    const now = new Date();
    if (key === dayKey(now)) return 'Today';
    if (key === dayKey(new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1))) return 'Yesterday';
    return day.toLocaleDateString(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
  }

  // A stable hue per name, so people are easy to tell apart.
  function hue(name) {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return h % 360;
  }

  // accountOf returns what an event says of a member besides its name,
  // {id, roles}, or null for a plain guest. id is the account id ('' for a
  // guest): only a non-empty one, from the server that verified the
  // credentials, makes a verified member; a name alone never does. roles
  // may mark a guest too (a script granted its session some).
  function accountOf(id, roles) {
    const acc = {
      id: typeof id === 'string' ? id : '',
      roles: Array.isArray(roles) ? roles.map(String) : [],
    };
    return acc.id || acc.roles.some((r) => !PLAIN_ROLES.has(r)) ? acc : null;
  }

  // marksEl renders what is known of a member besides the name: a check
  // mark for a verified account (its id in the tooltip) and a badge per
  // role beyond the plain "user"/"guest". Plain guests get an empty span.
  function marksEl(account) {
    const span = document.createElement('span');
    span.className = 'marks';
    fillMarks(span, account);
    return span;
  }

  function fillMarks(span, account) {
    span.replaceChildren();
    if (!account) return;
    if (account.id) {
      const v = document.createElement('span');
      v.className = 'verified';
      v.textContent = '✓';
      v.title = `verified account: ${account.id}`;
      v.setAttribute('role', 'img');
      v.setAttribute('aria-label', `verified account ${account.id}`);
      span.append(v);
    }
    const roles = account.roles.filter((r) => !PLAIN_ROLES.has(r));
    // Moderator badges first: they must not be cut off by ROLE_BADGES_MAX.
    const shown = [...roles.filter((r) => MOD_ROLES.has(r)), ...roles.filter((r) => !MOD_ROLES.has(r))];
    for (const r of shown.slice(0, ROLE_BADGES_MAX)) {
      const b = document.createElement('span');
      b.className = MOD_ROLES.has(r) ? `role mod ${r === 'admin' ? 'admin' : 'moderator'}` : 'role';
      b.dataset.role = r;
      b.textContent = r;
      b.title = `roles: ${roles.join(', ')}`;
      span.append(b);
    }
  }

  // fillText appends text to node, turning http(s) URLs into links. Only
  // Text nodes and anchors with a checked scheme are created.
  function fillText(node, text) {
    let last = 0;
    for (const m of text.matchAll(URL_RE)) {
      const url = m[0].replace(/[.,;:!?)\]}]+$/, '');
      if (m.index > last) node.append(text.slice(last, m.index));
      const a = document.createElement('a');
      a.href = url;
      a.textContent = url;
      a.rel = 'noopener noreferrer nofollow ugc';
      a.target = '_blank';
      node.append(a);
      last = m.index + url.length;
    }
    if (last < text.length) node.append(text.slice(last));
  }

  function nearBottom() {
    const s = el.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  function scrollToBottom() {
    el.scroller.scrollTop = el.scroller.scrollHeight;
  }

  // ---- rendering -----------------------------------------------------------

  // dated starts a list item that belongs to the day of d.
  function dated(className, d) {
    const li = document.createElement('li');
    li.className = className;
    li.dataset.t = String(d.getTime());
    li.dataset.day = dayKey(d);
    return li;
  }

  // messageEl renders a chat message; an action ("/me waves", "action":
  // true) reads "* alice waves", with the name inside the text.
  function messageEl(m) {
    const d = parseTime(m.ts);
    const li = dated('msg', d);
    if (m.id) li.dataset.id = String(m.id);
    const user = String(m.user ?? '');
    li.dataset.user = user;
    // user_id and roles come with an account's messages (replayed ones
    // too, when the server's store keeps them); a message without them
    // is a guest's, or one the server knows no account of.
    const account = accountOf(m.user_id, m.roles);
    if (account && account.id) li.dataset.account = account.id;
    // What the header shows besides the name, for regroup.
    li.dataset.marks = account ? `${account.id} ${account.roles.join(' ')}` : '';
    if (S.ownNames.has(user)) li.classList.add('own');
    const who = document.createElement('span');
    who.className = 'user';
    who.textContent = user;
    who.style.setProperty('--hue', String(hue(user)));
    const text = document.createElement('span');
    text.className = 'text';
    if (m.action === true) {
      li.classList.add('action');
      text.append('* ', who);
      if (account) text.append(marksEl(account));
      text.append(' ');
      fillText(text, String(m.text ?? ''));
      li.append(timeEl(d), text);
    } else {
      fillText(text, String(m.text ?? ''));
      const head = document.createElement('span');
      head.className = 'who';
      head.append(who, marksEl(account));
      li.append(timeEl(d), head, text);
    }
    return li;
  }

  function noticeEl(kind, text, ts) {
    const d = parseTime(ts);
    const li = dated(`notice ${kind}`, d);
    const span = document.createElement('span');
    span.className = 'text';
    span.textContent = text;
    li.append(timeEl(d), span);
    return li;
  }

  function daySep(key) {
    const li = document.createElement('li');
    li.className = 'day';
    li.setAttribute('role', 'separator');
    li.dataset.sep = key;
    const span = document.createElement('span');
    span.textContent = dayLabel(key);
    li.append(span);
    return li;
  }

  const isSep = (li) => li.classList.contains('day');

  // fixDays makes the day separators right for the items first..last (in
  // list order) and their surroundings: every shown item whose day differs
  // from the shown item before it gets a separator, and no other separator
  // stays. It starts at the separators and hidden items just before first
  // (one may head a day whose items are gone) and ends at the first shown
  // item after last (whose separator may now be wrong, or missing).
  function fixDays(first, last) {
    if (!first) return;
    relabelDays();
    let start = first;
    for (let p = first.previousElementSibling; p && (isSep(p) || p.hidden); p = p.previousElementSibling) start = p;
    let prev = start.previousElementSibling?.dataset.day ?? '';
    let pastLast = false;
    for (let li = start, next; li; li = next) {
      next = li.nextElementSibling;
      if (isSep(li)) {
        li.remove();
        continue;
      }
      if (!li.hidden) {
        if (li.dataset.day !== prev) {
          li.before(daySep(li.dataset.day));
          prev = li.dataset.day;
        }
        if (pastLast) break;
      }
      if (li === last) pastLast = true;
    }
  }

  // relabelDays renames the separators when the date changed since they
  // were labelled ("Today" becomes "Yesterday" at midnight).
  function relabelDays() {
    const today = dayKey(new Date());
    if (today === S.today) return;
    S.today = today;
    // The room's list and the open conversation's.
    for (const li of document.querySelectorAll('li.day')) {
      li.firstElementChild.textContent = dayLabel(li.dataset.sep);
    }
  }

  // At each midnight the labels move on, also when nothing is said.
  function scheduleRelabel() {
    const now = new Date();
    const next = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1, 0, 0, 1);
    setTimeout(() => {
      relabelDays();
      scheduleRelabel();
    }, next - now);
  }

  // visiblePrev returns the shown list item before li, skipping redacted ones.
  function visiblePrev(li) {
    let p = li.previousElementSibling;
    while (p && p.hidden) p = p.previousElementSibling;
    return p;
  }

  // regroup marks li as a continuation ("cont": no name header) when the
  // message right above it is from the same sender, shortly before.
  function regroup(li) {
    if (!li || !li.classList.contains('msg')) return;
    const p = visiblePrev(li);
    // An action reads as a sentence with the name in it: it never shares
    // a header, nor gives one to the message after it.
    // The same name is not enough: a verified member and a guest who got
    // the name later each get their own header, and so does a change of
    // roles (its badges are in the header).
    const cont = Boolean(p && p.classList.contains('msg') && p.dataset.user === li.dataset.user &&
      p.dataset.marks === li.dataset.marks &&
      !li.classList.contains('action') && !p.classList.contains('action') &&
      Math.abs(Number(li.dataset.t) - Number(p.dataset.t)) < GROUP_MS);
    li.classList.toggle('cont', cont);
  }

  function track(m, li) {
    const id = Number(m.id) || 0;
    if (id <= 0) return;
    S.byId.set(id, li);
    if (id > S.lastId) S.lastId = id;
    if (S.oldestId === 0 || id < S.oldestId) S.oldestId = id;
  }

  // known reports whether message m is already on the page (ids are unique
  // within a room; 0 means "not stored", which we never de-duplicate).
  function known(m) {
    const id = Number(m.id) || 0;
    return id > 0 && S.byId.has(id);
  }

  function appendItems(items, forceScroll) {
    if (items.length === 0) return;
    const stick = forceScroll || nearBottom();
    el.messages.append(...items);
    fixDays(items[0], items[items.length - 1]);
    for (const li of items) regroup(li);
    if (stick) scrollToBottom();
    if (document.hidden) {
      S.unread += items.filter((li) => li.classList.contains('msg')).length;
      updateTitle();
    }
  }

  function appendMessages(list) {
    const items = [];
    let own = false;
    for (const m of list) {
      if (known(m)) continue;
      const li = messageEl(m);
      track(m, li);
      if (li.classList.contains('own')) own = true;
      items.push(li);
    }
    appendItems(items, own);
  }

  function notice(kind, text, ts) {
    appendItems([noticeEl(kind, text, ts)], false);
  }

  // prependMessages inserts an older page above what is shown, keeping the
  // messages the user is looking at in place. more is whether the server
  // has still older ones (it changes the "load older" control above the
  // list, so it is applied before the scroll position is restored).
  function prependMessages(list, more) {
    const items = [];
    for (const m of list) {
      if (known(m)) continue;
      const li = messageEl(m);
      track(m, li);
      items.push(li);
    }
    // Anchor on the text of the item that was first: the control above
    // the list may disappear, that item may lose its name header (it can
    // become a continuation of the page above) and its day separator (when
    // the page above ends on the same day), but its text stays.
    let oldFirst = el.messages.firstElementChild;
    while (oldFirst && (isSep(oldFirst) || oldFirst.hidden)) oldFirst = oldFirst.nextElementSibling;
    const anchor = oldFirst ? oldFirst.lastElementChild : null;
    const before = anchor ? anchor.getBoundingClientRect().top : 0;
    S.moreOlder = more;
    S.loadingOlder = false;
    updateOlder();
    el.messages.prepend(...items);
    if (items.length > 0) fixDays(items[0], items[items.length - 1]);
    for (const li of items) regroup(li);
    regroup(oldFirst);
    if (anchor) el.scroller.scrollTop += anchor.getBoundingClientRect().top - before;
  }

  // presence: a full list ("users": on joining, or asked for) replaces
  // ours; a delta removes "left" names, then adds "joined" ones (both
  // idempotent, so a newcomer's list absorbs a delta it already reflects).
  // "accounts" maps the names of users/joined that have an account to
  // {id, roles}, "guests" those of guests granted roles to {roles}; a name
  // in neither is a plain guest's.
  function onPresence(ev) {
    const table = (v) => (v && typeof v === 'object' ? v : {});
    const accs = table(ev.accounts);
    const guests = table(ev.guests);
    const setAccounts = (names) => {
      for (const n of names) {
        let a = null;
        if (Object.hasOwn(accs, n) && accs[n]) a = accountOf(accs[n].id, accs[n].roles);
        else if (Object.hasOwn(guests, n) && guests[n]) a = accountOf('', guests[n].roles);
        if (a) S.accounts.set(n, a); else S.accounts.delete(n);
      }
    };
    if (Array.isArray(ev.users)) {
      S.people = ev.users.map(String);
      S.accounts.clear();
      setAccounts(S.people);
      // The full list follows the join's welcome and replay: a note about
      // the name given goes under the replayed messages, not above them.
      if (S.nameNote) {
        notice('local', S.nameNote);
        S.nameNote = '';
      }
    } else {
      const left = Array.isArray(ev.left) ? ev.left.map(String) : [];
      const joined = Array.isArray(ev.joined) ? ev.joined.map(String) : [];
      S.people = S.people.filter((n) => !left.includes(n));
      for (const n of left) S.accounts.delete(n);
      for (const n of joined) if (!S.people.includes(n)) S.people.push(n);
      setAccounts(joined);
    }
    renderPresence(S.people);
    updateIdentity();
  }

  function renderPresence(users) {
    const items = users.map((name) => {
      const li = document.createElement('li');
      const dot = document.createElement('span');
      dot.className = 'dot';
      dot.style.setProperty('--hue', String(hue(name)));
      dot.setAttribute('aria-hidden', 'true');
      // Another member's name starts a direct conversation with it.
      const acc = S.accounts.get(name) ?? null;
      const n = document.createElement(name === S.myName ? 'span' : 'button');
      n.className = 'name';
      n.textContent = name;
      if (name !== S.myName) {
        n.type = 'button';
        n.title = `Send ${name} a direct message`;
        n.addEventListener('click', () => dm.openWith(name, acc && acc.id ? acc.id : ''));
      }
      if (acc && acc.id) li.dataset.account = acc.id;
      li.append(dot, n, marksEl(acc));
      if (name === S.myName) {
        li.classList.add('self');
        const you = document.createElement('span');
        you.className = 'you';
        you.textContent = '(you)';
        li.append(you);
      }
      return li;
    });
    el.presence.replaceChildren(...items);
    el.peopleCount.textContent = `(${users.length})`;
  }

  // myAccount is this tab's account as the server describes it: from the
  // room's presence while in one (it follows role changes), else from the
  // last session check; null for a guest.
  function myAccount() {
    if (S.myName && S.accounts.has(S.myName)) return S.accounts.get(S.myName);
    const ses = S.session;
    return ses && ses.guest === false ? accountOf(ses.id, ses.roles) : null;
  }

  // updateIdentity shows who this tab is: the marks by "you are …", the
  // "signed in" line of the join form (which then needs no name: an
  // account's nick is its own) and the log-out control.
  function updateIdentity() {
    const acc = myAccount();
    fillMarks(el.meMarks, acc);
    el.logout.hidden = !S.auth;
    el.nameField.hidden = Boolean(S.auth);
    el.signedIn.hidden = !S.auth;
    if (S.auth) {
      const ses = S.session;
      const who = ses && ses.guest === false && ses.name ? String(ses.name) : '';
      let text = who ? `Signed in as ${who}` : 'Signed in with a token';
      if (S.auth.expires > 0) text += ` until ${clock(S.auth.expires)}`;
      el.signedInText.textContent = text;
      fillMarks(el.signedInMarks, who ? acc : null);
    }
  }

  // clock formats a Unix time (seconds) as the local HH:MM.
  function clock(unix) {
    const d = new Date(unix * 1000);
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  }

  function updateOlder() {
    el.older.hidden = !S.moreOlder;
    el.older.disabled = S.loadingOlder || !S.online;
    el.older.textContent = S.loadingOlder ? 'Loading older messages…' : 'Load older messages';
  }

  function updateMe() {
    el.me.hidden = !S.myName;
    el.meName.textContent = S.myName;
    el.roomTitle.hidden = !S.room;
    el.roomTitle.textContent = S.room ? `#${S.room}` : '';
    // Re-mark: a rename may have made earlier messages "own".
    for (const li of el.messages.querySelectorAll('li.msg')) {
      li.classList.toggle('own', S.ownNames.has(li.dataset.user));
    }
    for (const li of el.presence.children) {
      const name = li.querySelector('.name')?.textContent;
      li.classList.toggle('self', name === S.myName);
    }
    updateIdentity();
  }

  function updateTitle() {
    const base = S.room ? `#${S.room} — moonchat` : 'moonchat';
    document.title = S.unread > 0 ? `(${S.unread}) ${base}` : base;
  }

  function setStatus(state, text) {
    // Screen readers hear state changes, not every tick of the countdown.
    if (el.status.dataset.state !== state) {
      el.announce.textContent = state === 'reconnecting' ? 'connection lost, reconnecting' : text;
    }
    el.status.dataset.state = state;
    el.status.textContent = text;
    el.app.dataset.conn = state;
    updateComposer();
    updateOlder();
  }

  function showView(view) {
    el.app.dataset.view = view;
    el.joinView.hidden = view !== 'join';
    el.chatView.hidden = view !== 'chat';
    el.leave.hidden = view !== 'chat';
  }

  // ---- connection ----------------------------------------------------------

  // wsURL is the WebSocket URL of S.room. The token goes in the query:
  // browsers cannot set an Authorization header on a WebSocket handshake.
  function wsURL(token) {
    const params = new URLSearchParams();
    if (S.wantName) params.set('name', S.wantName);
    if (S.lastId > 0) params.set('since', String(S.lastId));
    if (token) params.set('token', token);
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/chat/${encodeURIComponent(S.room)}?${params}`;
  }

  // authHeaders carries the token of fetch calls. (The WebSocket handshake
  // cannot have headers: there it is ?token=, see wsURL.) A header keeps it
  // out of URLs, which proxies and servers log (RFC 6750 section 2.3).
  function authHeaders(token) {
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  // readJSON returns a response's JSON body, or null when it has none.
  async function readJSON(resp) {
    try {
      return await resp.json();
    } catch {
      return null;
    }
  }

  // checkSession asks the server what a handshake to room with token would
  // get (GET /api/session, docs/protocol.md), since a page cannot read the
  // HTTP status of a refused WebSocket handshake. The answer is one of
  // {kind: 'ok', session}, {kind: 'refused', status, reason} (401/403: do
  // not connect) or {kind: 'failed', reason} (no answer we can use: the
  // server is down or broken; try again later).
  async function checkSession(room, token) {
    let resp;
    try {
      resp = await fetch(`/api/session?room=${encodeURIComponent(room)}`, {
        headers: authHeaders(token),
        cache: 'no-store',
      });
    } catch {
      return { kind: 'failed', reason: 'cannot reach the server' };
    }
    const body = await readJSON(resp);
    if (resp.status === 401 || resp.status === 403) {
      const reason = body && typeof body.error === 'string' && body.error
        ? body.error : (resp.status === 401 ? 'sign-in required' : 'not allowed here');
      return { kind: 'refused', status: resp.status, reason };
    }
    if (resp.ok && body && typeof body === 'object') return { kind: 'ok', session: body };
    return { kind: 'failed', reason: `the server answered ${resp.status} to the session check` };
  }

  // connect checks the session, then opens the WebSocket. It runs on every
  // attempt, reconnects too: credentials can expire while a page waits to
  // reconnect, and a refused handshake looks like any network failure
  // from here (close code 1006), so only the check can say "stop".
  async function connect() {
    clearRetry();
    S.online = false;
    S.lastError = '';
    const gen = ++S.connGen;
    setStatus('connecting', 'connecting…');
    let token = S.auth ? S.auth.token : '';
    const check = await checkSession(S.room, token);
    // Left, moved or reconnected meanwhile: this check is old news.
    if (gen !== S.connGen || !S.joined) return;
    if (check.kind === 'refused') {
      refused(check.status, check.reason, token);
      return;
    }
    if (check.kind === 'failed') {
      if (S.attempt === 0) notice('error', `Cannot connect: ${check.reason}.`);
      showView('chat');
      scheduleRetry();
      return;
    }
    S.session = check.session;
    if (S.auth && S.session.guest === true) {
      ignoredToken();
      token = '';
    }
    if (S.auth && S.session.guest === false) {
      // An account joins under its own nick: ask for it, so that the
      // welcome's name is no surprise.
      if (typeof S.session.name === 'string' && S.session.name) S.wantName = S.session.name;
      if (Number(S.session.expires) > 0) setAuth({ ...S.auth, expires: Number(S.session.expires) });
    }
    updateIdentity();
    if (el.app.dataset.view !== 'chat') {
      showView('chat');
      el.text.focus();
    }
    let ws;
    try {
      ws = new WebSocket(wsURL(token), PROTOCOL);
    } catch (err) {
      notice('error', `cannot connect: ${err.message}`);
      scheduleRetry();
      return;
    }
    S.ws = ws;
    S.wsToken = token;
    S.sentToken = '';
    ws.onopen = () => {
      if (S.ws !== ws) return;
      if (ws.protocol !== PROTOCOL) {
        notice('error', 'the server does not speak moonchat.v1');
        ws.close(1000, 'protocol');
      }
    };
    ws.onmessage = (ev) => {
      if (S.ws === ws) handleFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (S.ws !== ws) return;
      S.ws = null;
      onClosed(ev);
    };
  }

  function sendJSON(obj) {
    if (!S.ws || S.ws.readyState !== WebSocket.OPEN || !S.online) return false;
    S.ws.send(JSON.stringify(obj));
    return true;
  }

  function onClosed(ev) {
    const wasOnline = S.online;
    S.online = false;
    S.loadingOlder = false;
    dm.onClosed();
    // Held live events are dropped: the reconnect resumes from lastId, the
    // end of what was caught up, and gets them again.
    S.catchingUp = false;
    S.held = [];
    if (!S.joined) {
      setStatus('idle', 'not connected');
      return;
    }
    if (ev.code === 4001) {
      // The credentials expired (docs/protocol.md). A token renewed since
      // the server last took one is worth a reconnect (the session check
      // vets it first); the same token again would only be refused.
      if (S.auth && S.auth.token !== S.wsToken) {
        notice('local', 'Session renewed; reconnecting…');
        connect();
        return;
      }
      expired(ev.reason || 'token expired');
      return;
    }
    if (ev.code === 1000 || ev.code === 1008) {
      // Quit, kicked or refused: reconnecting would only repeat it. 1000
      // is a normal close (RFC 6455 §7.4.1: "quit" says "goodbye"), told
      // as news; 1008 is a refusal, told as an error.
      const normal = ev.code === 1000;
      const reason = ev.reason || S.lastError ||
        (normal ? 'the server closed the connection' : 'refused by the server');
      S.joined = false;
      store('session', KEY_JOINED, null);
      setStatus(normal ? 'ended' : 'closed', `disconnected: ${reason}`);
      notice('local', `Disconnected: ${reason}`);
      backToJoin();
      S.myName = ''; // the topbar no longer says "you are …"
      updateMe();
      if (normal) el.joinInfo.textContent = `Disconnected: ${reason}`;
      else el.joinError.textContent = reason;
      return;
    }
    if (wasOnline) {
      notice('local', `Connection lost${ev.code && ev.code !== 1006 ? ` (${ev.code}${ev.reason ? `: ${ev.reason}` : ''})` : ''}. Reconnecting…`);
    }
    scheduleRetry();
  }

  // backoff gives the delay before reconnect attempt n (0-based): doubling
  // from BACKOFF_MIN_MS up to BACKOFF_MAX_MS, with "equal jitter" so that a
  // restarted server is not hit by every page at the same instant.
  function backoff(n) {
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(n, 10));
    return cap / 2 + Math.random() * (cap / 2);
  }

  function scheduleRetry() {
    clearRetry();
    const delay = backoff(S.attempt++);
    S.retryAt = Date.now() + delay;
    const tick = () => {
      const secs = Math.max(1, Math.ceil((S.retryAt - Date.now()) / 1000));
      setStatus('reconnecting', `reconnecting in ${secs}s`);
    };
    tick();
    S.countdownTimer = setInterval(tick, 1000);
    S.retryTimer = setTimeout(connect, delay);
  }

  function clearRetry() {
    clearTimeout(S.retryTimer);
    clearInterval(S.countdownTimer);
    S.retryTimer = 0;
    S.countdownTimer = 0;
  }

  // ---- protocol events -----------------------------------------------------

  function handleFrame(data) {
    if (typeof data !== 'string') return;
    let ev;
    try {
      ev = JSON.parse(data);
    } catch {
      return; // not ours to render; the server only sends JSON on moonchat.v1
    }
    if (!ev || typeof ev !== 'object') return;
    if (S.catchingUp && (ev.type === 'message' || ev.type === 'system')) {
      S.held.push(ev);
      return;
    }
    render(ev);
  }

  function render(ev) {
    switch (ev.type) {
      case 'welcome': onWelcome(ev); break;
      case 'history': if (typeof ev.with === 'string') dm.onHistory(ev); else onHistory(ev); break;
      case 'direct': dm.onDirect(ev); break;
      case 'conversations': dm.onConversations(ev); break;
      case 'message': typingDone(String(ev.user ?? '')); appendMessages([ev]); break;
      case 'system': onSystem(ev); break;
      case 'presence': onPresence(ev); break;
      case 'rename': onRename(ev); break;
      case 'redact': onRedact(ev); break;
      case 'gap': onGap(ev); break;
      case 'error': onError(ev); break;
      case 'token': onTokenAccepted(ev); break;
      case 'roles': onRoles(ev); break;
      case 'topic': setTopic(ev); break;
      case 'typing': onTyping(ev); break;
      default: break; // newer server, older page: ignore what we do not know
    }
  }

  function onWelcome(ev) {
    S.online = true;
    S.attempt = 0;
    if (ev.room) S.room = String(ev.room);
    const had = S.myName;
    S.myName = String(ev.user ?? '');
    S.ownNames.add(S.myName);
    // The server makes a name unique in the room ("alice-2") or a script
    // may pick another one: say so, once per name given.
    S.nameNote = S.myName && S.myName !== S.wantName && S.myName !== had
      ? nameNote(S.wantName, S.myName) : '';
    el.joinError.textContent = '';
    // A topic event follows the welcome when the room has one: what was
    // shown may have been cleared while this page was away.
    setTopic(null);
    clearTypers();
    setStatus('online', 'online');
    updateMe();
    updateTitle();
    dm.onWelcome();
  }

  // nameNote tells the user that the name asked for is not the one given.
  function nameNote(asked, given) {
    // The server's rule for a taken name: the name (shortened to fit if
    // need be) with the smallest free "-N" suffix.
    const m = /^(.+)-([0-9]+)$/.exec(given);
    if (m && asked.startsWith(m[1]) && given !== asked) return `${asked} is taken; you are ${given}`;
    return `You are ${given} (you asked for ${asked}).`;
  }

  function onHistory(ev) {
    const msgs = Array.isArray(ev.messages) ? ev.messages : [];
    if (ev.reason === 'before') {
      prependMessages(msgs, Boolean(ev.more));
    } else {
      // "join", "since" or "after": these follow what is shown. The first
      // join of a room also tells us whether there is older history to
      // page through.
      const first = S.oldestId === 0;
      appendMessages(msgs);
      if (ev.reason === 'join' && first) S.moreOlder = Boolean(ev.more);
      if (ev.reason === 'join') scrollToBottom();
      if (ev.reason === 'since' || ev.reason === 'after') {
        // One resume batch is capped by the server: fetch the next page
        // from the last id of this one until nothing more is missing.
        const last = msgs.length > 0 ? Number(msgs[msgs.length - 1].id) || 0 : 0;
        if (ev.more && last > 0 &&
            sendJSON({ type: 'history', after: last, limit: CATCHUP_PAGE })) {
          S.catchingUp = true;
        } else {
          endCatchUp();
        }
      }
    }
    updateOlder();
    fillIfShort();
  }

  // endCatchUp shows the live events that arrived during the catch-up, in
  // the order they came; messages the pages already brought are dropped
  // as duplicates.
  function endCatchUp() {
    const held = S.held;
    S.catchingUp = false;
    S.held = [];
    for (const ev of held) render(ev);
  }

  function onRename(ev) {
    const oldName = String(ev.old ?? '');
    const newName = String(ev.new ?? '');
    // Our own name first: the presence list below marks it "(you)".
    const mine = oldName !== '' && oldName === S.myName;
    if (mine) {
      S.myName = newName;
      S.wantName = newName;
      S.ownNames.add(newName);
      el.joinName.value = newName; // Leave, then Join, keeps this name
      store('local', KEY_NAME, newName);
      if (S.joined) store('session', KEY_JOINED, JSON.stringify({ name: newName, room: S.room }));
    }
    // The account (if any) goes with the member to the new name.
    const acc = S.accounts.get(oldName);
    S.accounts.delete(oldName);
    if (acc) S.accounts.set(newName, acc);
    // No presence event follows a rename: the list is updated here.
    const i = S.people.indexOf(oldName);
    if (i >= 0) {
      if (S.people.includes(newName)) S.people.splice(i, 1);
      else S.people[i] = newName;
      renderPresence(S.people);
    }
    if (mine) updateMe();
  }

  function onRedact(ev) {
    const id = Number(ev.id);
    S.held = S.held.filter((h) => !(h.type === 'message' && Number(h.id) === id));
    const li = S.byId.get(id);
    if (li) {
      li.hidden = true;
      li.classList.add('redacted');
      fixDays(li, li);
      let next = li.nextElementSibling;
      while (next && (next.hidden || isSep(next))) next = next.nextElementSibling;
      regroup(next);
    }
  }

  function onGap(ev) {
    const after = Number(ev.after) || 0;
    const first = Number(ev.first) || 0;
    const n = first - after - 1;
    const what = n > 0 ? `${n} message${n === 1 ? '' : 's'}` : 'Some messages';
    const verb = n === 1 ? 'is' : 'are';
    notice('gap', `${what} sent while you were away ${verb} no longer available.`);
  }

  function onError(ev) {
    const text = String(ev.text ?? ev.code ?? 'error');
    S.lastError = text;
    // An error about a direct message is shown by the conversation.
    if (dm.onError(ev)) return;
    const li = noticeEl('error', text);
    if (ev.code) li.dataset.code = String(ev.code);
    appendItems([li], true);
    if (ev.code === 'muted') onMuted(text);
    if (ev.code === 'slow_mode') onSlowMode(text);
    if (ev.code === 'token_refused') {
      // The socket keeps the token it had (and closes with 4001 when that
      // expires; onClosed then reconnects with the newer one).
      S.sentToken = '';
    }
    if (ev.code === 'no_history' && S.loadingOlder) {
      // The older page we asked for will not come; let the reader retry.
      S.loadingOlder = false;
      updateOlder();
    }
    if ((ev.code === 'no_history' || ev.code === 'bad_request') && S.catchingUp) {
      // The next resume page will not come: show what is there.
      endCatchUp();
    }
  }

  // ---- moderation and presence niceties ------------------------------------

  // setTopic shows the room's topic (a topic event; null clears it) in
  // the top bar, who set it and when in its tooltip.
  function setTopic(ev) {
    const topic = ev ? String(ev.topic ?? '') : '';
    el.topic.hidden = topic === '';
    el.topicText.textContent = topic;
    const since = ev && ev.since ? parseTime(ev.since) : null;
    el.topic.title = topic && ev.by
      ? `topic set by ${ev.by}${since ? ` on ${since.toLocaleString()}` : ''}` : '';
  }

  function onSystem(ev) {
    const text = String(ev.text ?? '');
    notice('system', text, ev.ts);
    // The default moderation script says "NAME is no longer muted (BY)";
    // an account's mute names it "NICK (account ID) is no longer muted".
    if (S.mutedUntil && S.myName &&
        (text.startsWith(`${S.myName} is no longer muted (`) ||
         (text.startsWith(`${S.myName} (account `) && text.includes(') is no longer muted ')))) {
      S.mutedUntil = 0;
      updateComposer();
    }
  }

  // onMuted keeps sending off until the mute's expiry (from the server's
  // text: "… until 2026-01-01 10:00:00 UTC…"; none: until an unmute notice).
  function onMuted(text) {
    const m = /\buntil (\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) UTC\b/.exec(text);
    const until = m ? Date.parse(`${m[1]}T${m[2]}Z`) : NaN;
    S.mutedUntil = Number.isFinite(until) ? until : Infinity;
    // "you are muted in lobby until 6:50:05 PM: spam": the expiry in the
    // reader's local time.
    S.mutedText = text.replace(/^message not sent: /, '')
      .replace(m ? m[0] : /$^/, Number.isFinite(until) ? `until ${new Date(until).toLocaleTimeString()}` : '');
    updateComposer();
  }

  // onSlowMode holds sending for the wait the server named ("wait 12s",
  // "wait 1m30s").
  function onSlowMode(text) {
    const m = /\bwait ((?:\d+h)?(?:\d+m)?(?:\d+s)?)\s*$/.exec(text);
    let ms = 0;
    if (m) {
      for (const [, n, u] of m[1].matchAll(/(\d+)([hms])/g)) {
        ms += Number(n) * { h: 3600000, m: 60000, s: 1000 }[u];
      }
    }
    S.slowUntil = Date.now() + (ms || 1000);
    updateComposer();
  }

  // blockedFor returns why sending a message is held now ('' when not).
  function blockedFor(now) {
    if (S.mutedUntil && now >= S.mutedUntil) S.mutedUntil = 0;
    if (S.slowUntil && now >= S.slowUntil) S.slowUntil = 0;
    if (S.mutedUntil) {
      const what = S.mutedText || 'you are muted';
      return `${what[0].toUpperCase()}${what.slice(1)}. Commands such as /help still work.`;
    }
    if (S.slowUntil) {
      return `Slow mode: you can send again in ${Math.ceil((S.slowUntil - now) / 1000)}s.`;
    }
    return '';
  }

  // updateComposer enables sending when online and neither muted nor
  // held by slow mode, and shows why not; it ticks every second while a
  // wait runs out.
  function updateComposer() {
    clearTimeout(S.noteTimer);
    S.noteTimer = 0;
    // The room's mute and slow mode do not hold direct messages (a mute
    // that does, one in every room, is answered by the server).
    const why = dm.isOpen() ? '' : blockedFor(Date.now());
    el.app.dataset.muted = S.mutedUntil ? 'true' : 'false';
    el.composerNote.hidden = why === '';
    el.composerNote.textContent = why;
    el.composerNote.dataset.kind = S.mutedUntil ? 'muted' : (S.slowUntil ? 'slow' : '');
    el.send.disabled = el.status.dataset.state !== 'online' || why !== '';
    if (why && !dm.isOpen() && (S.slowUntil || S.mutedUntil !== Infinity)) {
      S.noteTimer = setTimeout(updateComposer, 1000);
    }
  }

  // onTyping shows "NAME is typing…" until TYPING_SHOW_MS after its last
  // typing event, or until NAME's message arrives.
  function onTyping(ev) {
    const name = String(ev.name ?? '');
    if (!name || name === S.myName) return;
    clearTimeout(S.typers.get(name));
    S.typers.set(name, setTimeout(() => typingDone(name), TYPING_SHOW_MS));
    renderTypers();
  }

  function typingDone(name) {
    if (!S.typers.has(name)) return;
    clearTimeout(S.typers.get(name));
    S.typers.delete(name);
    renderTypers();
  }

  function clearTypers() {
    for (const t of S.typers.values()) clearTimeout(t);
    S.typers.clear();
    renderTypers();
  }

  function renderTypers() {
    const names = [...S.typers.keys()];
    el.typing.hidden = names.length === 0;
    el.typing.textContent = names.length === 0 ? ''
      : names.length === 1 ? `${names[0]} is typing…`
        : names.length <= 3 ? `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]} are typing…`
          : 'Several people are typing…';
  }

  // typed tells the room this user is typing, at most every
  // TYPING_SEND_MS (not for commands, nor while muted). Keystrokes within
  // the interval are answered by one send at its end, if the box still
  // holds something: typing that goes on is shown without a gap.
  function typed() {
    const text = el.text.value;
    const now = Date.now();
    blockedFor(now); // forgets a mute that has run out
    // Typing is told to the room, not to a conversation.
    if (!text.trim() || text.startsWith('/') || S.mutedUntil || dm.isOpen()) return;
    const wait = S.typingSent + TYPING_SEND_MS - now;
    if (wait > 0) {
      if (!S.typingTimer) {
        S.typingTimer = setTimeout(() => {
          S.typingTimer = 0;
          typed();
        }, wait);
      }
      return;
    }
    if (sendJSON({ type: 'typing' })) S.typingSent = now;
  }

  // ---- history paging --------------------------------------------------------

  function requestOlder() {
    if (!S.moreOlder || S.loadingOlder || S.oldestId <= 0) return;
    if (sendJSON({ type: 'history', before: S.oldestId, limit: HISTORY_PAGE })) {
      S.loadingOlder = true;
      updateOlder();
    }
  }

  // fillIfShort pages in older history while the list does not fill the
  // screen (there is no scrollbar to pull in that case). It stops as soon as
  // the server says there is nothing older.
  function fillIfShort() {
    const s = el.scroller;
    // Not while a conversation hides the room: it has no height then.
    if (S.moreOlder && !s.hidden && s.scrollHeight <= s.clientHeight + 4) requestOlder();
  }

  // ---- user actions ------------------------------------------------------------

  function validName(name) {
    if (!name) return 'Pick a name.';
    if ([...name].length > NAME_MAX) return `Names have at most ${NAME_MAX} characters.`;
    if (NAME_BAD_RE.test(name)) return 'Names cannot contain spaces or ":".';
    if (name.startsWith('*')) return 'Names cannot start with "*".';
    return '';
  }

  function join(name, room) {
    S.catchingUp = false; // a catch-up of the socket being replaced ends with it
    S.held = [];
    if (room !== S.room) {
      // A different room: start from a clean slate.
      dm.close();
      el.messages.replaceChildren();
      S.people = [];
      S.accounts.clear();
      el.presence.replaceChildren();
      S.byId.clear();
      S.lastId = 0;
      S.oldestId = 0;
      S.moreOlder = false;
      setTopic(null);
      S.mutedUntil = 0;
      S.slowUntil = 0;
      updateComposer();
    }
    clearTypers();
    S.room = room;
    S.wantName = name;
    S.joined = true;
    S.attempt = 0;
    S.unread = 0;
    if (name) store('local', KEY_NAME, name); // a guest's name, for next time
    store('local', KEY_ROOM, room);
    // Per tab, so that two tabs of one browser each rejoin as themselves.
    store('session', KEY_JOINED, JSON.stringify({ name, room }));
    history.replaceState(null, '', `${location.pathname}${location.search}#${room}`);
    el.joinError.textContent = '';
    el.joinInfo.textContent = '';
    updateMe();
    updateTitle();
    // The chat view comes when the session check lets us in (connect).
    connect();
  }

  function leave() {
    S.connGen++; // a session check under way is for nothing now
    S.joined = false;
    store('session', KEY_JOINED, null);
    clearRetry();
    const ws = S.ws;
    S.ws = null;
    S.online = false;
    if (ws) ws.close(1000, 'leaving');
    backToJoin();
    S.myName = '';
    updateMe();
    setStatus('idle', 'not connected');
  }

  // backToJoin shows the join form, holding the name this tab had (after
  // a /nick or a "-2" that is not what the form was sent with) and its room.
  function backToJoin() {
    dm.close();
    if (S.myName) el.joinName.value = S.myName;
    if (S.room) el.joinRoom.value = S.room;
    el.joinError.textContent = '';
    el.joinInfo.textContent = '';
    showView('join');
    (el.nameField.hidden ? el.joinRoom : el.joinName).focus();
  }

  // submitJoin joins what the join form says. With credentials the name
  // field is not used: an account's nick is its own (the server ignores
  // name= then).
  function submitJoin() {
    const name = S.auth ? '' : el.joinName.value.trim();
    const room = el.joinRoom.value.trim() || DEFAULT_ROOM;
    const badName = S.auth ? '' : validName(name);
    const bad = badName || (ROOM_RE.test(room) ? '' : 'Rooms use 1–32 letters, digits, "-", "_" or ".".');
    if (bad) {
      el.joinInfo.textContent = '';
      el.joinError.textContent = bad;
      (badName ? el.joinName : el.joinRoom).focus();
      return;
    }
    join(name, room);
  }

  el.joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    submitJoin();
  });

  // ---- identity ------------------------------------------------------------------

  // setAuth makes a the tab's credentials ({token, expires, login}) and
  // keeps them in sessionStorage, so that a reload stays signed in.
  function setAuth(a) {
    S.auth = a;
    store('session', KEY_AUTH, JSON.stringify(a));
    scheduleRenew();
    updateIdentity();
  }

  // forgetAuth drops the tab's credentials: after a log-out, or when the
  // server refused or expired them.
  function forgetAuth() {
    S.auth = null;
    S.session = null;
    store('session', KEY_AUTH, null);
    clearTimeout(S.renewTimer);
    S.renewTimer = 0;
    updateIdentity();
  }

  function loadAuth() {
    try {
      const a = JSON.parse(load('session', KEY_AUTH) || 'null');
      if (a && typeof a.token === 'string' && a.token && a.token.length <= TOKEN_MAX) {
        return { token: a.token, expires: Number(a.expires) || 0, login: a.login === true };
      }
    } catch { /* ignore a damaged entry */ }
    return null;
  }

  // fragmentToken takes a token an embedding application put in the page's
  // address (#token=T, with room= and name= if it likes) and removes it from
  // the address bar and the tab's history entry, so that it is not
  // bookmarked, shared or shown. The rest of the fragment stays.
  function fragmentToken() {
    const raw = location.hash.slice(1);
    if (!raw.includes('token=')) return '';
    const h = new URLSearchParams(raw);
    const token = (h.get('token') || '').trim();
    h.delete('token');
    const rest = h.toString();
    history.replaceState(null, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
    return token && token.length <= TOKEN_MAX && !/\s/.test(token) ? token : '';
  }

  // probeLogin asks whether the server has a login script (GET
  // /api/login): then the page offers a password form.
  async function probeLogin() {
    let available = false;
    try {
      const resp = await fetch('/api/login', { cache: 'no-store' });
      const body = await readJSON(resp);
      available = resp.ok && body !== null && body.available === true;
    } catch { /* no answer: no password form */ }
    S.loginAvailable = available;
    el.loginForm.hidden = !available;
    el.showAuth.hidden = !available || Boolean(S.auth) || !el.auth.hidden;
    return available;
  }

  // openAuth shows the sign-in forms: the token box always, the password
  // form when the server has a login script.
  async function openAuth() {
    el.auth.hidden = false;
    el.showAuth.hidden = true;
    const available = await probeLogin();
    if (el.app.dataset.view === 'join' && !el.auth.hidden) {
      (available ? el.loginName : el.tokenInput).focus();
    }
  }

  function closeAuth() {
    el.auth.hidden = true;
    // "Sign in…" leads to a password form: without a login script, the
    // token box comes when the server asks for credentials.
    el.showAuth.hidden = Boolean(S.auth) || !S.loginAvailable;
    el.loginError.textContent = '';
    el.tokenError.textContent = '';
  }

  // signedIn is what follows a login or a pasted token: join the room of
  // the join form with the new credentials (the session check vets them).
  function signedIn() {
    closeAuth();
    el.joinError.textContent = '';
    submitJoin();
  }

  el.showAuth.addEventListener('click', () => openAuth());

  el.loginForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = el.loginName.value.trim();
    const password = el.loginPassword.value;
    if (!name || !password) {
      el.loginError.textContent = 'Enter your account name and password.';
      return;
    }
    el.loginError.textContent = '';
    el.loginButton.disabled = true;
    let resp = null;
    let body = null;
    try {
      // The password travels in the body of a POST, never in a URL.
      resp = await fetch('/api/login', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name, password }),
        cache: 'no-store',
      });
      body = await readJSON(resp);
    } catch { /* resp stays null */ }
    el.loginButton.disabled = false;
    if (!resp) {
      el.loginError.textContent = 'Cannot reach the server.';
      return;
    }
    if (!resp.ok || !body || typeof body.token !== 'string' || !body.token) {
      let msg = body && typeof body.error === 'string' && body.error ? body.error : `login failed (HTTP ${resp.status})`;
      const after = resp.headers.get('Retry-After');
      if (resp.status === 429 && after) msg += ` (try again in ${after}s)`;
      el.loginError.textContent = msg;
      el.loginPassword.select();
      return;
    }
    el.loginPassword.value = '';
    setAuth({ token: body.token, expires: Number(body.expires) || 0, login: true });
    signedIn();
  });

  el.tokenForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const token = el.tokenInput.value.trim();
    if (!token) {
      el.tokenError.textContent = 'Paste a token first.';
      return;
    }
    if (token.length > TOKEN_MAX || /\s/.test(token)) {
      el.tokenError.textContent = 'That is not a token: a token is one word, without spaces.';
      return;
    }
    el.tokenInput.value = '';
    el.tokenError.textContent = '';
    // Where it came from, the server cannot renew it: login is false.
    setAuth({ token, expires: 0, login: false });
    signedIn();
  });

  el.logout.addEventListener('click', () => {
    forgetAuth();
    if (S.joined) leave();
    closeAuth();
    el.joinError.textContent = '';
    el.joinInfo.textContent = 'Logged out.';
    (el.nameField.hidden ? el.joinRoom : el.joinName).focus();
  });

  // refused: the session check said no (401: no or bad credentials; 403:
  // not allowed here). The reason is shown on the join form with the
  // sign-in forms; a token refused with 401 is forgotten (it is bad or
  // expired), one refused with 403 is kept (it may do for another room).
  function refused(status, reason, token) {
    S.joined = false;
    store('session', KEY_JOINED, null);
    clearRetry();
    if (status === 401 && token && S.auth && S.auth.token === token) forgetAuth();
    if (el.app.dataset.view === 'chat') notice('error', `Refused: ${reason}`);
    setStatus('closed', `refused: ${reason}`);
    backToJoin();
    S.myName = '';
    updateMe();
    el.joinError.textContent = reason;
    openAuth();
  }

  // expired: the server closed the socket with 4001 (the credentials
  // expired). Reconnecting would be refused: ask for new ones instead.
  function expired(reason) {
    S.joined = false;
    store('session', KEY_JOINED, null);
    clearRetry();
    forgetAuth();
    setStatus('closed', 'session expired');
    notice('error', `Session expired (${reason}).`);
    backToJoin();
    S.myName = '';
    updateMe();
    el.joinError.textContent = `Session expired (${reason}). Log in again or paste a new token.`;
    openAuth();
  }

  // scheduleRenew arranges for a token from a login to be renewed a little
  // before it expires. Other tokens come from elsewhere (the embedding
  // application): this server cannot renew them.
  function scheduleRenew() {
    clearTimeout(S.renewTimer);
    S.renewTimer = 0;
    const a = S.auth;
    if (!a || !a.login || !(a.expires > 0)) return;
    const left = a.expires - Date.now() / 1000;
    const lead = Math.min(RENEW_LEAD_MAX_S, Math.max(RENEW_LEAD_MIN_S, left / 5));
    S.renewTimer = setTimeout(renew, Math.max(0, (left - lead) * 1000));
  }

  // renew trades the login's token for a fresh one (POST /api/token) and
  // hands it to the open socket ({"type":"token"}), which would otherwise
  // be closed with 4001 when the old one expires.
  async function renew() {
    S.renewTimer = 0;
    const a = S.auth;
    if (!a || !a.login) return;
    let resp = null;
    let body = null;
    try {
      resp = await fetch('/api/token', { method: 'POST', headers: authHeaders(a.token), cache: 'no-store' });
      body = await readJSON(resp);
    } catch { /* resp stays null */ }
    if (!S.auth || S.auth.token !== a.token) return; // logged out or signed in again meanwhile
    if (resp && resp.ok && body && typeof body.token === 'string' && body.token) {
      setAuth({ token: body.token, expires: Number(body.expires) || 0, login: true });
      if (sendJSON({ type: 'token', token: body.token })) S.sentToken = body.token;
      return;
    }
    if (resp && resp.status >= 400 && resp.status < 500) {
      // This login cannot be extended (it is older than the server's
      // maximum session age, or the server does not renew): it ends.
      const text = `Your session ends at ${clock(a.expires)}; log in again then to stay.`;
      if (S.joined) notice('local', text); else el.joinInfo.textContent = text;
      return;
    }
    // No answer: try again while the token lives.
    if (a.expires - Date.now() / 1000 > RENEW_RETRY_MS / 1000) S.renewTimer = setTimeout(renew, RENEW_RETRY_MS);
  }

  // ignoredToken: the server answered a request with a token as a guest's,
  // so it checks no tokens (no [auth] keys). Holding on to the token would
  // only claim a sign-in that is not there.
  function ignoredToken() {
    forgetAuth();
    const text = 'This server does not check tokens: you are a guest here.';
    if (S.joined) notice('local', text); else el.joinInfo.textContent = text;
    // Join under the name of the form (now shown again), if it has one.
    const name = el.joinName.value.trim();
    if (S.joined && !S.wantName && name && !validName(name)) S.wantName = name;
  }

  // onTokenAccepted: the server took the renewed token for this socket.
  function onTokenAccepted() {
    if (S.sentToken) S.wsToken = S.sentToken;
    S.sentToken = '';
  }

  // onRoles: a member's roles changed for its session (a script granted or
  // revoked one): {name, id (accounts only), roles}. Its new roles replace
  // the old ones wherever the member is shown from now on.
  function onRoles(ev) {
    const name = String(ev.name ?? '');
    if (!name) return;
    const acc = accountOf(ev.id, ev.roles);
    if (acc) S.accounts.set(name, acc); else S.accounts.delete(name);
    renderPresence(S.people);
    updateIdentity();
  }

  // identityCheck asks who the tab's token makes it (for the join form's
  // "signed in as"), before any room is joined. A refused token is
  // forgotten, with the reason shown.
  async function identityCheck() {
    const a = S.auth;
    if (!a) return;
    const room = el.joinRoom.value.trim() || DEFAULT_ROOM;
    const check = await checkSession(ROOM_RE.test(room) ? room : DEFAULT_ROOM, a.token);
    if (!S.auth || S.auth.token !== a.token || S.joined) return;
    if (check.kind === 'ok') {
      S.session = check.session;
      if (S.session.guest === true) {
        ignoredToken();
        return;
      }
      if (Number(S.session.expires) > 0) setAuth({ ...a, expires: Number(S.session.expires) });
      updateIdentity();
    } else if (check.kind === 'refused' && check.status === 401) {
      forgetAuth();
      el.joinError.textContent = check.reason;
      openAuth();
    }
  }

  el.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = el.text.value;
    if (!text.trim()) return;
    if (dm.isOpen()) {
      // Everything typed in a conversation goes to it, "/" or not (the
      // server never reads a direct message as a command).
      if (dm.send(text)) el.text.value = '';
      else dm.tell('Not connected: your message was not sent (it is still in the box).');
      return;
    }
    // A command still reaches the scripts when muted or in slow mode (the
    // server only refuses what would be posted).
    if (blockedFor(Date.now()) && !text.startsWith('/')) {
      updateComposer();
      return;
    }
    if (sendJSON({ type: 'message', text })) {
      el.text.value = '';
      clearTimeout(S.typingTimer); // nothing is being typed any more
      S.typingTimer = 0;
    } else {
      notice('local', 'Not connected: your message was not sent (it is still in the box).');
    }
  });

  el.text.addEventListener('input', typed);
  // With Send disabled (muted, slow mode) Enter does not submit the form
  // by itself; a /command may still go.
  el.text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.isComposing && el.send.disabled && S.online &&
        el.text.value.startsWith('/')) {
      e.preventDefault();
      el.composer.requestSubmit();
    }
  });
  el.leave.addEventListener('click', leave);
  el.older.addEventListener('click', requestOlder);
  el.scroller.addEventListener('scroll', () => {
    if (el.scroller.scrollTop < 48) requestOlder();
  }, { passive: true });

  // Editing the room in the address bar moves this tab to that room.
  window.addEventListener('hashchange', () => {
    // A link with a new token (#token=…): adopt it for the next join.
    const token = fragmentToken();
    if (token) {
      setAuth({ token, expires: 0, login: false });
      if (!S.joined) identityCheck();
      return;
    }
    const raw = decodeURIComponent(location.hash.slice(1));
    if (!S.joined || raw.includes('=') || raw === S.room || !ROOM_RE.test(raw)) return;
    const ws = S.ws;
    S.ws = null;
    if (ws) ws.close(1000, 'changing room');
    el.joinRoom.value = raw;
    join(S.wantName, raw);
  });

  // Back online after a network outage: do not wait for the backoff.
  window.addEventListener('online', () => {
    if (S.joined && !S.ws) connect();
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && S.unread) {
      S.unread = 0;
      updateTitle();
    }
  });

  // ---- start -------------------------------------------------------------------

  // Defaults: "#ROOM" (or "#room=R&name=N") in the hash, ?room=&name= in the
  // query, then what this browser used last time, then the server's
  // default room.
  function defaults() {
    const q = new URLSearchParams(location.search);
    const rawHash = decodeURIComponent(location.hash.slice(1));
    const h = rawHash.includes('=') ? new URLSearchParams(rawHash) : new URLSearchParams();
    const hashRoom = rawHash && !rawHash.includes('=') ? rawHash : '';
    return {
      name: h.get('name') || q.get('name') || load('local', KEY_NAME),
      room: h.get('room') || hashRoom || q.get('room') || load('local', KEY_ROOM) || DEFAULT_ROOM,
    };
  }

  function rejoinTarget() {
    try {
      const t = JSON.parse(load('session', KEY_JOINED) || 'null');
      if (t && typeof t.name === 'string' && typeof t.room === 'string' &&
          (t.name === '' ? S.auth !== null : !validName(t.name)) && ROOM_RE.test(t.room)) return t;
    } catch { /* ignore a damaged entry */ }
    return null;
  }

  scheduleRelabel();
  // Credentials: a token in the address (an embedding application's link)
  // replaces the one this tab had.
  {
    const token = fragmentToken();
    const a = token ? { token, expires: 0, login: false } : loadAuth();
    if (a) setAuth(a);
  }
  const d = defaults();
  el.joinName.value = d.name;
  el.joinRoom.value = d.room;
  showView('join');
  setStatus('idle', 'not connected');
  updateIdentity();
  closeAuth();
  probeLogin();
  // A reload of a tab that was in a room goes straight back in.
  const again = rejoinTarget();
  if (again) {
    if (again.name) el.joinName.value = again.name;
    el.joinRoom.value = again.room;
    join(again.name, again.room);
  } else {
    (d.name || S.auth ? el.joinRoom : el.joinName).focus();
    identityCheck();
  }
})();
