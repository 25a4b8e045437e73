"""SSH, owned by gpuconsole: config resolution, host-key trust, one connection per host, and the
Docker API and port tunnels carried over it. Never imports Textual or Rich."""
