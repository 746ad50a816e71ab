package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// listValue is a flag.Value holding a comma-separated list; each Set replaces the list.
type listValue []string

func (l *listValue) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

func (l *listValue) Set(s string) error {
	*l = splitList(s)
	return nil
}

// splitList splits a list written with commas or line breaks, dropping blank items and
// lines that start with "#" (comments, in a file).
func splitList(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, item := range strings.Split(line, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

// parsePublicURL checks a -public-url: http or https, a host, nothing after it. The server's
// paths are at the root of its host (the Airy widget's socket is at /ws.chatplugin whatever
// else), so a URL with a path is refused rather than make links that lead nowhere.
func parsePublicURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("-public-url %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("-public-url %q: want http(s)://host[:port], the server at the root of its host", s)
	}
	return u.Scheme + "://" + u.Host, nil
}

// checkOrigin checks one -origins item: "*" or scheme://host[:port], as a browser writes an
// Origin header.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(u.Host, "*?") {
		return fmt.Errorf("-origins %q: want scheme://host[:port] (such as https://shop.example.com) or *", o)
	}
	return nil
}

// normalOrigin is an origin as browsers send it: no trailing slash, scheme and host in
// lower case.
func normalOrigin(o string) string {
	if o == "*" {
		return o
	}
	u, _ := url.Parse(o) // checked by checkOrigin
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

// originPatterns turns origins into websocket.AcceptOptions.OriginPatterns: a pattern with a
// scheme is matched against the Origin's scheme://host, with path.Match, so the characters
// path.Match gives a meaning to are escaped (an IPv6 origin has brackets).
func originPatterns(origins []string) []string {
	var out []string
	for _, o := range origins {
		o = normalOrigin(o)
		if o == "*" {
			out = append(out, "*")
			continue
		}
		var b strings.Builder
		for _, c := range o {
			if strings.ContainsRune(`*?[]\`, c) {
				b.WriteByte('\\')
			}
			b.WriteRune(c)
		}
		out = append(out, b.String())
	}
	return out
}

// corsOrigins are the origins for a CORS allow list (httpapi/airy's AllowedOrigins).
func corsOrigins(origins []string) []string {
	out := make([]string, 0, len(origins))
	for _, o := range origins {
		out = append(out, normalOrigin(o))
	}
	return out
}

// baseURL is the server's URL for people and links: -public-url, or one made from the
// address it listens on. An unspecified host (":8080", "0.0.0.0:8080", "[::]:8080") is
// "localhost": it is reachable there, and "http://[::]:8080" is no address to visit.
func baseURL(publicURL string, listening net.Addr, tls bool) string {
	if publicURL != "" {
		u, _ := parsePublicURL(publicURL) // checked by config.check
		return u
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(listening.String())
	if err != nil {
		return scheme + "://" + listening.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() || host == "" {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// describeAddr says where the server listens, in words for the banner.
func describeAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() || host == "" {
		return ":" + port + " (every interface)"
	}
	return a.String()
}

// isLoopback reports whether addr (host:port) names a loopback address or localhost.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
