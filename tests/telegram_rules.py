"""Telegram's own input rules, for the fake Bot API server: HTML parse mode and button URLs.

A fake that accepts any text cannot catch a missing `html.escape`; one that guesses the rules
refuses what Telegram accepts. These functions follow TDLib, which the Bot API server runs:
`parse_html` in td/telegram/MessageEntity.cpp, `LinkManager::check_link` and `parse_url` in
tdutils/td/utils/HttpUrl.cpp (read at tdlib/td 022d602, July 2026). Same tags, same error
texts, same byte offsets. What that means for a bot:

* `<` always starts a tag: an unsupported or unclosed one is "can't parse entities".
* `&` starts an entity only as `&lt;`, `&gt;`, `&amp;`, `&quot;` or `&#...;` (the `;` is
  optional); any other `&` is kept as text. So an unescaped "R&D" passes, but an unescaped
  "Q&amp;A" is shown as "Q&A": wrong, not refused.
* `>` needs no escaping.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Any

JSONDict = dict[str, Any]

TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "tg-time",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SPACE = frozenset(b" \t\r\n\0\v")  # TDLib's is_space: the terminating NUL counts as one
_NAMED = {b"lt": ord("<"), b"gt": ord(">"), b"amp": ord("&"), b"quot": ord('"')}
_SIMPLE = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}


class EntityError(ValueError):
    """The text is refused: the Bot API answers 400 "Bad Request: can't parse entities: ..."."""


def _is_alpha(byte: int) -> bool:
    return ord("a") <= byte | 0x20 <= ord("z")


def _is_alnum(byte: int) -> bool:
    return _is_alpha(byte) or ord("0") <= byte <= ord("9")


def _digit(byte: int, base: int) -> int | None:
    char = chr(byte).lower()
    return int(char, 16) if char and char in "0123456789abcdef"[:base] else None


def _decode_entity(data: bytes, pos: int) -> tuple[int, int]:
    """(code point, position after it) for the entity at `data[pos] == '&'`; (0, pos) if none."""
    end = pos + 1
    code = 0
    if data[pos + 1] == ord("#"):
        base = 16 if data[pos + 2] == ord("x") else 10
        end += 2 if base == 16 else 1
        while (digit := _digit(data[end], base)) is not None:
            code = code * base + digit
            end += 1
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while _is_alpha(data[end]):
            end += 1
        code = _NAMED.get(data[pos + 1 : end], 0)
        if not code:
            return 0, pos
    if data[end] == ord(";"):
        end += 1
    return code, end


@dataclass
class _Open:
    tag: str
    argument: str
    offset: int  # UTF-16 offset in the parsed text, as entity offsets are counted
    begin: int  # byte position in the parsed text (for <a> without href)


def parse_html(raw: str) -> tuple[str, list[JSONDict]]:
    """The text the user sees and its entities (Bot API shape), or EntityError like Telegram."""
    data = raw.encode() + b"\0"
    out = bytearray()
    entities: list[JSONDict] = []
    stack: list[_Open] = []
    utf16 = 0
    i = 0
    while i < len(data) - 1:
        c = data[i]
        if c == ord("&"):
            code, after = _decode_entity(data, i)
            if code:
                if 0xD800 <= code <= 0xDFFF:
                    raise EntityError(
                        "Text contains invalid Unicode characters after decoding HTML entities, "
                        "check for unmatched surrogate code units"
                    )
                out += chr(code).encode()
                utf16 += 1 + (code > 0xFFFF)
                i = after
                continue
        if c != ord("<"):
            if c & 0xC0 != 0x80:  # first byte of a UTF-8 sequence
                utf16 += 1 + (c >= 0xF0)
            out.append(c)
            i += 1
            continue
        begin = i
        i += 1
        if data[i] != ord("/"):
            i = _open_tag(data, begin, stack, utf16, len(out))
        else:
            i = _close_tag(data, begin, stack, utf16, out, entities)
        i += 1  # past '>'
    if stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return out.decode(), entities


def _open_tag(data: bytes, begin: int, stack: list[_Open], utf16: int, out_len: int) -> int:
    i = begin + 1
    while data[i] not in _SPACE and data[i] != ord(">"):
        i += 1
    if data[i] == 0:
        raise EntityError(f"Unclosed start tag at byte offset {begin}")
    tag = data[begin + 1 : i].decode(errors="replace").lower()
    if tag not in TAGS:
        raise EntityError(f'Unsupported start tag "{tag}" at byte offset {begin}')
    argument = ""
    while data[i] != ord(">"):
        while data[i] != 0 and data[i] in _SPACE:
            i += 1
        if data[i] == ord(">"):
            break
        name_begin = i
        while data[i] not in _SPACE and data[i] not in b"=>/\"'":
            i += 1
        name = data[name_begin:i]
        if not name:
            raise EntityError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
        while data[i] != 0 and data[i] in _SPACE:
            i += 1
        if data[i] != ord("="):
            if data[i] == 0:
                raise EntityError(f'Unclosed start tag "{tag}" at byte offset {begin}')
            if tag == "blockquote" and name == b"expandable":
                argument = "1"
            continue
        i += 1
        while data[i] != 0 and data[i] in _SPACE:
            i += 1
        if data[i] == 0:
            raise EntityError(f'Unclosed start tag "{tag}" at byte offset {begin}')
        value, i = _attribute_value(data, i)
        if data[i] == 0:
            raise EntityError(f"Unclosed start tag at byte offset {begin}")
        argument = _argument(tag, name, value, argument)
    if tag == "span" and argument != "spoiler":
        raise EntityError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
    stack.append(_Open(tag, argument, utf16, out_len))
    return i


def _attribute_value(data: bytes, i: int) -> tuple[str, int]:
    if data[i] not in b"'\"":  # a name token: letters, digits, periods, hyphens
        start = i
        while _is_alnum(data[i]) or data[i] in b".-":
            i += 1
        if data[i] not in _SPACE and data[i] != ord(">"):
            raise EntityError(f"Unexpected end of name token at byte offset {start}")
        return data[start:i].decode().lower(), i
    quote = data[i]
    i += 1
    value = bytearray()
    while data[i] != quote and data[i] != 0:
        if data[i] == ord("&"):
            code, after = _decode_entity(data, i)
            if code:
                value += chr(code).encode(errors="surrogatepass")
                i = after
                continue
        value.append(data[i])
        i += 1
    if data[i] == quote:
        i += 1
    return value.decode(errors="replace"), i


def _argument(tag: str, name: bytes, value: str, argument: str) -> str:
    if tag == "a" and name == b"href":
        return value
    if tag == "code" and name == b"class" and value.startswith("language-"):
        return value[len("language-") :]
    if tag == "span" and name == b"class" and value.startswith("tg-"):
        return value[len("tg-") :]
    if (tag, name) in {("tg-emoji", b"emoji-id"), ("tg-time", b"unix")}:
        return value
    if tag == "blockquote" and name == b"expandable":
        return "1"
    return argument


def _close_tag(
    data: bytes,
    begin: int,
    stack: list[_Open],
    utf16: int,
    out: bytearray,
    entities: list[JSONDict],
) -> int:
    if not stack:
        raise EntityError(f"Unexpected end tag at byte offset {begin}")
    i = begin + 2
    while data[i] not in _SPACE and data[i] != ord(">"):
        i += 1
    end_tag = data[begin + 2 : i].decode(errors="replace").lower()
    while data[i] in _SPACE and data[i] != 0:
        i += 1
    if data[i] != ord(">"):
        raise EntityError(f"Unclosed end tag at byte offset {begin}")
    opened = stack.pop()
    if end_tag and end_tag != opened.tag:
        raise EntityError(
            f'Unmatched end tag at byte offset {begin}, expected "</{opened.tag}>", '
            f'found "</{end_tag}>"'
        )
    length = utf16 - opened.offset
    if length <= 0:
        return i
    last = entities[-1] if entities else {}
    same_span = (last.get("offset"), last.get("length")) == (opened.offset, length)
    if opened.tag == "pre" and same_span and last["type"] == "code" and last.get("language"):
        last["type"] = "pre"  # <pre><code class="language-x">: one pre entity with a language
    elif opened.tag == "code" and same_span and last["type"] == "pre" and opened.argument:
        last["language"] = opened.argument  # <pre> closed first, around the same text
    else:
        entity = _entity(opened, length, bytes(out[opened.begin :]).decode(errors="replace"))
        if entity is not None:
            entities.append(entity)
    return i


def _entity(opened: _Open, length: int, inner: str) -> JSONDict | None:
    where: JSONDict = {"offset": opened.offset, "length": length}
    tag, argument = opened.tag, opened.argument
    if tag in _SIMPLE:
        return {"type": _SIMPLE[tag], **where}
    if tag == "tg-emoji":
        if not argument.isdigit() or int(argument) == 0:
            raise EntityError("Invalid custom emoji identifier specified")
        return {"type": "custom_emoji", **where, "custom_emoji_id": argument}
    if tag == "tg-time":
        unix = int(argument) if argument.isascii() and argument.isdigit() else 0
        return {"type": "date_time", **where, "unix_time": unix} if unix > 0 else None
    if tag == "a":
        url = argument or inner
        return {"type": "text_link", **where, "url": url} if check_link(url) is None else None
    if tag == "pre":
        return {"type": "pre", **where}
    if tag == "code":  # the language is kept only until a surrounding <pre> takes it
        return {"type": "code", **where, **({"language": argument} if argument else {})}
    if tag == "blockquote":
        kind = "expandable_blockquote" if argument else "blockquote"
        return {"type": kind, **where}
    raise AssertionError(tag)


# --- URLs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Url:
    https: bool
    userinfo: str
    host: str
    is_ipv6: bool
    specified_port: int


class UrlError(ValueError):
    pass


def check_link(link: str) -> str | None:
    """None if Telegram accepts `link` (http, https, tg, ton); else TDLib's reason."""
    try:
        _check_link(link)
    except UrlError as error:
        return str(error)
    return None


def _check_link(link: str) -> None:
    scheme = next((s for s in ("tg:", "ton:", "tonsite:") if link.lower().startswith(s)), "")
    link = link[len(scheme) :]
    if scheme and link.startswith("//"):
        link = link[2:]
    url = _parse_url(link)
    if not scheme:
        if "." not in url.host and not url.is_ipv6:
            raise UrlError("Wrong HTTP URL")
        return
    wrong = "Wrong tg URL" if scheme == "tg:" else "Wrong ton URL"
    if link.lower().startswith("http://") or url.https or url.userinfo:
        raise UrlError(wrong)
    if url.specified_port or url.is_ipv6:
        raise UrlError(wrong)
    for char in url.host:
        if not (_is_alnum(ord(char)) or char in "-_" or (scheme == "tonsite:" and char == ".")):
            raise UrlError("Unallowed characters in URL host")


def _parse_url(url: str) -> _Url:
    """TDLib's parse_url: [https?://][userinfo@]host[:port][/path?query#fragment]."""
    cut = next((n for n, ch in enumerate(url) if ch in ":/?#@[]"), len(url))
    protocol, rest = url[:cut].lower(), url[cut:]
    https = False
    if rest.startswith("://"):
        if protocol not in ("http", "https"):
            raise UrlError("Unsupported URL protocol")
        https, rest = protocol == "https", rest[3:]
    else:
        rest = url
    end = next((n for n, ch in enumerate(rest) if ch in "/?#"), len(rest))
    authority = rest[:end]
    colon = len(authority) - 1
    while colon > 0 and authority[colon] not in ":]@":
        colon -= 1
    port = 0
    if colon > 0 and authority[colon] == ":":
        digits = authority[colon + 1 :].lstrip("0") or ("0" if authority[colon + 1 :] else "")
        port = int(digits) if digits.isascii() and digits.isdigit() else -1
        port = -1 if port == 0 or port >= 2**31 else port
        authority = authority[:colon]
    if port < 0 or port > 65535:
        raise UrlError("Wrong port number specified in the URL")
    at = authority.rfind("@")
    userinfo, host = (authority[:at], authority[at + 1 :]) if at >= 0 else ("", authority)
    is_ipv6 = bool(host) and host[0] == "[" and host[-1] == "]"
    if is_ipv6:
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise UrlError("Wrong IPv6 address specified in the URL") from None
    if not host:
        raise UrlError("URL host is empty")
    if host == ".":
        raise UrlError("Host is invalid")
    if not is_ipv6:
        _check_part(host.lower(), "host", allow_colon=False)
        _check_part(userinfo, "userinfo", allow_colon=True)
    return _Url(https, userinfo, host.lower(), is_ipv6, port)


_URL_SAFE = frozenset(".-_!$,~*'();&+=")


def _check_part(part: str, name: str, *, allow_colon: bool) -> None:
    i = 0
    while i < len(part):
        char = part[i]
        if (
            (char.isascii() and char.isalnum())
            or char in _URL_SAFE
            or (allow_colon and char == ":")
        ):
            i += 1
            continue
        if char == "%":
            pair = part[i + 1 : i + 3]
            if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
                i += 3
                continue
            raise UrlError(f"Wrong percent-encoded symbol in URL {name}")
        if not char.isascii():
            i += 1  # plain UTF-8 is allowed
            continue
        raise UrlError(f"Disallowed character in URL {name}")


# --- flood control ---------------------------------------------------------------------------
@dataclass
class FloodControl:
    """Telegram's per-chat limit on new messages, as a token bucket.

    The Bot FAQ: "avoid sending more than one message per second" in a chat; "we may allow
    short bursts that go over this limit, but eventually you'll begin receiving 429 errors".
    So a quiet chat may take `burst` messages at once, then `per_second`; beyond that the
    answer is 429 with `parameters.retry_after`. Only new messages count (send*); edits,
    deletions and callback answers have no published per-chat figure and are not limited.

    Tests play a conversation in milliseconds, but a person needs a moment to read a screen and
    tap: each update a fake user sends first lets `seconds_per_action` pass for that chat. What
    is measured is therefore what the bot sends per action of a person, the bot's own doing.
    """

    burst: int = 5
    per_second: float = 1.0
    seconds_per_action: float = 1.0

    def retry_after(self, tokens: float) -> int:
        """Whole seconds until one message is allowed again (Telegram sends integers >= 1)."""
        return max(1, math.ceil((1 - tokens) / self.per_second))
