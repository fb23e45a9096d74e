using LinqToDB;
using LinqToDB.Async;

namespace NotesApi.Data;

/// <summary>A tag and how many notes carry it.</summary>
public sealed record TagCount(string Name, int Notes);

/// <summary>Tags, on linq2db's default configuration: <c>new NotesDb()</c>.</summary>
public sealed class TagRepository
{
    public async Task<TagCount[]> ListAsync(CancellationToken cancellationToken)
    {
        await using var db = new NotesDb();
        return await db.Tags
            .OrderBy(t => t.Name)
            .Select(t => new TagCount(t.Name, db.NoteTags.Count(nt => nt.TagId == t.Id)))
            .ToArrayAsync(cancellationToken);
    }
}
