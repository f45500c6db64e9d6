"""Django's admin for superusers: domains, accounts, aliases, mailboxes (read-mostly)."""

from django.contrib import admin

from .models import Account, Alias, AliasTarget, Domain, Mailbox


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["name", "active", "created"]
    search_fields = ["name"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["address", "display_name", "quota_bytes", "used_bytes", "active"]
    search_fields = ["address", "display_name"]
    readonly_fields = ["used_bytes", "last_uidvalidity", "password"]


class AliasTargetInline(admin.TabularInline):
    model = AliasTarget
    extra = 1


@admin.register(Alias)
class AliasAdmin(admin.ModelAdmin):
    list_display = ["source", "active"]
    search_fields = ["source"]
    inlines = [AliasTargetInline]


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    list_display = ["account", "name", "uidvalidity", "uidnext", "highestmodseq", "special_use"]
    search_fields = ["name", "account__address"]
    readonly_fields = ["uidvalidity", "uidnext", "highestmodseq", "recent_uid"]
