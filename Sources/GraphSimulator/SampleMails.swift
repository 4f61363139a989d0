/// Realistic mails (senders, subjects, bodies) for `graph-bridge demo`, `graph-bridge simulator
/// --mail-every` and `graph-bridge simulator mail` without `--subject`: one list, so every
/// playground shows the same kind of inbox. Some subjects carry quotes, `&`, `<>`, accents and an
/// emoji on purpose, so templates and chat sinks show their escaping.
public enum SampleMails {
    /// The mails, in the order the generators cycle through them.
    public static let all: [MessageContent] = [
        mail(
            from: "Bob Kelly", "bob@contoso.com", subject: "Quarterly numbers are in",
            body: "Hi Alice,\n\nthe Q3 numbers are in the finance folder: revenue up 4 %, costs flat. Can we go through them on Thursday?\n\nBob"),
        mail(
            from: "Fabrikam Billing", "billing@fabrikam.com", subject: "Invoice 2026-1142 is due",
            body: "Dear customer,\n\ninvoice 2026-1142 over EUR 1,240.00 is due on the 15th. Please quote the invoice number with your payment.\n\nFabrikam Accounts Receivable",
            importance: .high),
        mail(
            from: "Contoso IT", "it@contoso.com", subject: "Password expires in 3 days",
            body: "Your Contoso password expires in 3 days. Change it at https://aka.ms/sspr before then to keep access to mail and Teams."),
        mail(
            from: "Zoë Ångström", "zoe@tailspin.example", subject: "Lunch on Friday?",
            body: "Hej Alice! I'm in town on Friday. Lunch at the usual place, 12:30? /Zoë"),
        mail(
            from: "Contoso Monitoring", "alerts@contoso.com", subject: "Incident 4711: mail flow delayed",
            body: "Severity 2. Outbound mail to external domains is delayed by up to 20 minutes since 09:12 UTC. Next update in 30 minutes.",
            importance: .high),
        mail(
            from: "Bob Kelly", "bob@contoso.com", subject: "Re: \"budget\" & <plans> for Q1",
            body: "> Can you send the \"budget\" & <plans>?\n\nAttached, with the travel line cut by 10 %. The <plans> sheet still needs your sign-off."),
        mail(
            from: "Contoso People Team", "people@contoso.com", subject: "Welcome to the team 🎉",
            body: "Welcome aboard! Your first-week schedule, the onboarding checklist and the link to the benefits portal are below."),
        mail(
            from: "Woodgrove Bank", "noreply@woodgrovebank.example", subject: "Payment received: 3,400.00",
            body: "We received your payment of 3,400.00 on account ending 0042. No action is needed.",
            importance: .low),
    ]

    /// The `index`-th mail, cycling through ``all``, addressed to `recipients`.
    public static func mail(_ index: Int, to recipients: [EmailAddress] = []) -> MessageContent {
        var content = all[((index % all.count) + all.count) % all.count]
        content.toRecipients = recipients
        return content
    }

    private static func mail(
        from name: String, _ address: String, subject: String, body: String, importance: MessageContent.Importance = .normal
    ) -> MessageContent {
        MessageContent(subject: subject, from: EmailAddress(name: name, address: address), body: body, importance: importance)
    }
}
