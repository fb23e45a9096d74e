using LinqToDB;
using LinqToDB.Async;
using LinqToDB.Data;

namespace NotesApi.Data;

/// <summary>A note as the API returns it.</summary>
public sealed record Note(long Id, string Title, string Body, string[] Tags);

/// <summary>Notes and their tags. Each method builds its own context from the configuration's connection string.</summary>
public sealed class NoteRepository(IConfiguration configuration)
{
    string ConnectionString => NotesDatabase.ConnectionString(configuration);

    string Provider => NotesDatabase.Provider(configuration);

    NotesDb Open() => new(ConnectionString, Provider);

    /// <summary>Creates a note with its tags, in one transaction: tags that do not exist yet are created.</summary>
    public async Task<Note> CreateAsync(string title, string body, IReadOnlyCollection<string> tags, CancellationToken cancellationToken)
    {
        await using var db = Open();
        await using var transaction = await db.BeginTransactionAsync(cancellationToken);
        var id = await db.InsertWithInt64IdentityAsync(new NoteRow { Title = title, Body = body }, token: cancellationToken);
        foreach (var tag in tags.Distinct(StringComparer.Ordinal))
        {
            var tagId = await db.Tags.Where(t => t.Name == tag).Select(t => (long?)t.Id).FirstOrDefaultAsync(cancellationToken)
                ?? await db.InsertWithInt64IdentityAsync(new TagRow { Name = tag }, token: cancellationToken);
            await db.InsertAsync(new NoteTagRow { NoteId = id, TagId = tagId }, token: cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        return (await FindAsync(db, id, cancellationToken))!;
    }

    public async Task<Note?> GetAsync(long id, CancellationToken cancellationToken)
    {
        await using var db = Open();
        return await FindAsync(db, id, cancellationToken);
    }

    /// <summary>Every note, newest first; only those with <paramref name="tag"/> when it is given.</summary>
    public async Task<Note[]> ListAsync(string? tag, CancellationToken cancellationToken)
    {
        await using var db = Open();
        var notes = db.Notes.AsQueryable();
        if (tag is not null)
            notes = notes.Where(n => db.NoteTags.Any(nt => nt.NoteId == n.Id && db.Tags.Any(t => t.Id == nt.TagId && t.Name == tag)));
        var ids = await notes.OrderByDescending(n => n.Id).Select(n => n.Id).ToArrayAsync(cancellationToken);

        var found = new List<Note>(ids.Length);
        foreach (var id in ids)
            found.Add((await FindAsync(db, id, cancellationToken))!);
        return [.. found];
    }

    /// <summary>Deletes a note; false when there is none with that id.</summary>
    public async Task<bool> DeleteAsync(long id, CancellationToken cancellationToken)
    {
#pragma warning disable CS0618 // linq2db 6 marks this constructor obsolete; applications written for earlier versions use it.
        await using var db = new DataConnection(NotesDatabase.LinqToDBProviderName(Provider), ConnectionString);
#pragma warning restore CS0618
        return await db.GetTable<NoteRow>().Where(n => n.Id == id).DeleteAsync(cancellationToken) == 1;
    }

    static async Task<Note?> FindAsync(NotesDb db, long id, CancellationToken cancellationToken)
    {
        var row = await db.Notes.FirstOrDefaultAsync(n => n.Id == id, cancellationToken);
        if (row is null)
            return null;

        var tags = await db.NoteTags.Where(nt => nt.NoteId == id)
            .SelectMany(nt => db.Tags.Where(t => t.Id == nt.TagId), (_, t) => t.Name)
            .OrderBy(name => name)
            .ToArrayAsync(cancellationToken);
        return new Note(row.Id, row.Title, row.Body, tags);
    }
}
