#!/usr/bin/env python3
"""A local payer sandbox for billd's demo and tests.

Speaks JSON shaped like the common eligibility (v3) and claim-status (v2)
APIs that clearinghouses offer in front of X12 270/271 and 276/277: AAA
errors with their X12 codes, EB benefit codes, STC category codes. It binds
127.0.0.1 only (port 0 picks a free one) and prints "listening on
127.0.0.1:PORT" as its first line.

Member ids drive the outcomes, so a test can ask for each one:
  NF...       subscriber not found (AAA 75)
  DOB...      birth date mismatch (AAA 71): a rejection
  NOID        an empty member id (AAA 72 names the field)
  INACTIVE... coverage inactive (EB01 6)
  BUSY...     HTTP 503
  SLOW...     HTTP 429 with Retry-After: 7
  DOWN...     AAA 42, unable to respond now
  GARBLED...  a body that is not JSON
anything else: active coverage with a deductible, out-of-pocket, copay and
coinsurance. A request without "Authorization: Bearer <key>" gets HTTP 401.
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def aaa(code, description, field=None):
    e = {"code": code, "description": description, "followupAction": "Please Correct and Resubmit"}
    if field:
        e["field"] = field
    return {"errors": [e]}


def eligibility(req):
    sub = req.get("subscriber") or {}
    member = (sub.get("memberId") or "").strip()
    enc = req.get("encounter") or {}
    dos = enc.get("dateOfService") or ""
    year = dos[:4] if len(dos) == 8 else "2026"
    base = {"controlNumber": req.get("controlNumber", ""), "tradingPartnerServiceId": req.get("tradingPartnerServiceId", "")}
    if not member:
        return 200, {**base, **aaa("72", "Invalid/Missing Subscriber/Insured ID", "memberId")}
    if member.startswith("NF"):
        return 200, {**base, **aaa("75", "Subscriber/Insured Not Found")}
    if member.startswith("DOB"):
        return 200, {**base, **aaa("71", "Patient Birth Date Does Not Match That for the Patient on the Database")}
    if member.startswith("DOWN"):
        return 200, {**base, **aaa("42", "Unable to Respond at Current Time")}
    if member.startswith("BUSY"):
        return 503, {"message": "upstream payer unavailable"}
    if member.startswith("SLOW"):
        return 429, {"message": "too many requests"}
    types = enc.get("serviceTypeCodes") or ["30"]
    if member.startswith("INACTIVE"):
        return 200, {**base,
                     "planStatus": [{"statusCode": "6", "status": "Inactive", "serviceTypeCodes": types}],
                     "planDateInformation": {"plan": f"{int(year) - 1}0101-{int(year) - 1}1231"}}
    return 200, {
        **base,
        "payer": {"name": "SANDBOX HEALTH PLAN", "payorIdentification": req.get("tradingPartnerServiceId", "")},
        "planInformation": {"groupNumber": "GRP-" + member[-4:], "groupDescription": "SANDBOX EMPLOYER"},
        "planDateInformation": {"plan": f"{year}0101-{year}1231"},
        "planStatus": [{"statusCode": "1", "status": "Active Coverage", "planDetails": "GOLD PPO",
                        "serviceTypeCodes": types}],
        "benefitsInformation": [
            {"code": "1", "name": "Active Coverage", "serviceTypeCodes": types, "planCoverage": "GOLD PPO"},
            {"code": "C", "name": "Deductible", "coverageLevelCode": "IND", "serviceTypeCodes": ["30"],
             "timeQualifierCode": "23", "benefitAmount": "1500", "inPlanNetworkIndicatorCode": "Y"},
            {"code": "C", "name": "Deductible", "coverageLevelCode": "IND", "serviceTypeCodes": ["30"],
             "timeQualifierCode": "29", "benefitAmount": "1200.50", "inPlanNetworkIndicatorCode": "Y"},
            {"code": "G", "name": "Out of Pocket (Stop Loss)", "coverageLevelCode": "FAM", "serviceTypeCodes": ["30"],
             "timeQualifierCode": "23", "benefitAmount": "6000", "inPlanNetworkIndicatorCode": "Y"},
            {"code": "B", "name": "Co-Payment", "coverageLevelCode": "IND", "serviceTypeCodes": ["98"],
             "timeQualifierCode": "27", "benefitAmount": "25", "inPlanNetworkIndicatorCode": "Y"},
            {"code": "A", "name": "Co-Insurance", "coverageLevelCode": "IND", "serviceTypeCodes": ["30"],
             "benefitPercent": "0.2", "inPlanNetworkIndicatorCode": "N"},
            {"code": "CB", "name": "Coverage Basis", "serviceTypeCodes": ["30"],
             "additionalInformation": [{"description": "Sandbox plan"}]},
        ],
    }


def claim_status(req):
    enc = req.get("encounter") or {}
    track = enc.get("trackingNumber") or ""
    billed = enc.get("submittedAmount") or "0"
    end = enc.get("endDateOfService") or enc.get("beginningDateOfService") or ""
    if track.startswith("UNKNOWN"):
        status = {"statusCategoryCode": "A4", "statusCategoryCodeValue": "Acknowledgement/Not Found", "statusCode": "35"}
    elif track.startswith("DENY"):
        status = {"statusCategoryCode": "F2", "statusCategoryCodeValue": "Finalized/Denial", "statusCode": "88",
                  "submittedAmount": billed, "amountPaid": "0", "tradingPartnerClaimNumber": "SBX" + track[-6:]}
    elif track.startswith("PEND"):
        status = {"statusCategoryCode": "P1", "statusCategoryCodeValue": "Pending/In Process", "statusCode": "20",
                  "submittedAmount": billed}
    else:
        paid = f"{float(billed) * 0.8:.2f}"
        status = {"statusCategoryCode": "F1", "statusCategoryCodeValue": "Finalized/Payment", "statusCode": "65",
                  "submittedAmount": billed, "amountPaid": paid, "paidDate": end,
                  "tradingPartnerClaimNumber": "SBX" + track[-6:]}
    return 200, {"controlNumber": req.get("controlNumber", ""),
                 "claims": [{"claimStatus": status, "patientAccountNumber": track}]}


class Handler(BaseHTTPRequestHandler):
    api_key = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("payer-sandbox: " + (fmt % args) + "\n")

    def reply(self, status, body, raw=None, headers=()):
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        if self.headers.get("authorization") != f"Bearer {self.api_key}":
            return self.reply(401, {"message": "invalid api key"})
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            return self.reply(400, {"message": "body is not JSON"})
        if self.path == "/eligibility/v3":
            member = ((req.get("subscriber") or {}).get("memberId") or "")
            if member.startswith("GARBLED"):
                return self.reply(200, None, raw=b"<html>gateway error</html>")
            status, body = eligibility(req)
            headers = [("retry-after", "7")] if status == 429 else []
            return self.reply(status, body, headers=headers)
        if self.path == "/claimstatus/v2":
            status, body = claim_status(req)
            return self.reply(status, body)
        return self.reply(404, {"message": "no such endpoint"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8089)
    ap.add_argument("--api-key", default="sandbox-key")
    args = ap.parse_args()
    Handler.api_key = args.api_key
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
