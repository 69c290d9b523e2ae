# Receives the gateway's password-reset deliveries, checks their signature and age, mails the link.
import hashlib, hmac, json, os, smtplib, time
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["RESET_HOOK_SECRET"].encode()  # the gateway's auth.password_reset.webhook_secret

class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        t, _, mac = self.headers.get("X-Gateway-Signature", "").removeprefix("t=").partition(",sha256=")
        good = hmac.new(SECRET, t.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not (t.isdigit() and abs(time.time() - int(t)) < 300 and hmac.compare_digest(good, mac)):
            self.send_response(401); self.end_headers(); return  # forged, or replayed later
        event = json.loads(body)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "no-reply@example.com", event["email"], "Reset your password"
        msg.set_content(f"https://app.example.com/reset#{event['token']}\nValid until {event['expiresAt']}.")
        with smtplib.SMTP(os.environ.get("SMTP_HOST", "localhost"), int(os.environ.get("SMTP_PORT", "25"))) as smtp:
            smtp.send_message(msg)
        self.send_response(204); self.end_headers()

HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8025"))), Hook).serve_forever()
